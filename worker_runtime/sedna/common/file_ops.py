"""File helpers of upstream Sedna's ``FileOps``, for local paths and ``file://`` URLs.

Workers here get their data and models as paths on the node (the LC mounts nothing and
downloads nothing), so remote URLs (``s3://``, ``gs://``, ``http(s)://``, ...) are refused with
a :class:`~sedna.common.errors.UnsupportedError` naming the URL, instead of upstream's minio
client reading credentials from the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from sedna.common.errors import UnsupportedError

_LOCAL_PREFIX = "file://"
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _local(path: str | os.PathLike[str]) -> str:
    """``path`` as a local path; ``file://`` URLs are unwrapped, other URLs refused."""
    text = os.fspath(path)
    if text.startswith(_LOCAL_PREFIX):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise UnsupportedError(f"{text}: file:// URLs must name a local path")
        return unquote(parts.path)
    if _REMOTE.match(text):
        scheme = text.split("://", 1)[0]
        raise UnsupportedError(
            f"{text}: {scheme}:// storage is not supported; workers read and write local "
            "paths (mount or copy the data onto the node)"
        )
    return text


class FileOps:
    """Class methods for files and folders, as upstream's ``sedna.common.file_ops.FileOps``."""

    _LOCAL_PREFIX = _LOCAL_PREFIX

    @classmethod
    def is_remote(cls, src: str) -> bool:
        """Whether ``src`` is a URL of remote storage (which this library refuses)."""
        return bool(_REMOTE.match(str(src))) and not str(src).startswith(_LOCAL_PREFIX)

    @classmethod
    def is_local(cls, src: str) -> bool:
        """Whether ``src`` is a ``file://`` URL or an existing local path."""
        return str(src).startswith(_LOCAL_PREFIX) or cls.exists(src)

    @classmethod
    def exists(cls, path: str) -> bool:
        """Whether ``path`` exists (``False`` for remote URLs)."""
        if not path or cls.is_remote(path):
            return False
        return os.path.exists(_local(path))

    @classmethod
    def join_path(cls, *args: str) -> str:
        """Join path parts; later parts never restart from the root (upstream's rule)."""
        if len(args) == 1:
            return str(args[0])
        first = str(args[0])
        rest = [str(part).lstrip(os.path.sep) for part in args[1:]]
        return os.path.join(first, *rest)

    @classmethod
    def make_dir(cls, *args: str) -> None:
        """Create the directory ``join_path(*args)`` (and its parents)."""
        os.makedirs(_local(cls.join_path(*args)), exist_ok=True)

    @classmethod
    def make_base_dir(cls, *args: str) -> None:
        """Create the parent directory of the file ``join_path(*args)``."""
        target = _local(cls.join_path(*args))
        if not os.path.isfile(target):
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)

    @classmethod
    def clean_folder(cls, target: str | Iterable[str], clean: bool = True) -> list[str]:
        """Create each directory of ``target``; empty it first when ``clean``. A path naming
        an existing file stands for its directory. ``None`` and empty entries are skipped."""
        targets = [target] if isinstance(target, str) else list(target)
        for path in {str(p) for p in targets if p}:
            local = _local(path)
            if clean:
                cls.delete(local)
            directory = os.path.dirname(local) if os.path.isfile(local) else local
            if directory:
                os.makedirs(directory, exist_ok=True)
        return targets

    @classmethod
    def delete(cls, path: str) -> None:
        """Remove the file or directory tree ``path``, if it exists."""
        local = _local(path)
        if os.path.isdir(local):
            shutil.rmtree(local, ignore_errors=True)
        elif os.path.lexists(local):
            with contextlib.suppress(FileNotFoundError):
                os.remove(local)

    @classmethod
    def copy_file(cls, src: str, dst: str) -> None:
        """Copy the file or directory ``src`` to ``dst`` (a file path or a directory)."""
        if not dst:
            return
        source, target = _local(src), _local(dst)
        if os.path.isdir(source):
            cls.copy_folder(source, target)
            return
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no such file to copy: {source}")
        if os.path.isdir(target):
            target = os.path.join(target, os.path.basename(source))
        if os.path.exists(target) and os.path.samefile(source, target):
            return
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        shutil.copy(source, target)

    @classmethod
    def copy_folder(cls, src: str, dst: str) -> None:
        """Copy the directory ``src`` into ``dst``, merging with what is there."""
        if not dst or not os.path.isdir(_local(src)):
            return
        shutil.copytree(_local(src), _local(dst), dirs_exist_ok=True)

    @classmethod
    def download(cls, src: str, dst: str | None = None, unzip: bool = False) -> str:
        """Copy ``src`` to ``dst`` (a temporary file when ``None``); returns ``dst``.

        ``unzip`` unpacks a ``.tar.gz`` next to it, as upstream did.
        """
        source = _local(src)
        if dst is None:
            handle, dst = tempfile.mkstemp()
            os.close(handle)
        target = _local(dst)
        if os.path.abspath(source) != os.path.abspath(target):
            cls.copy_file(source, target)
        if unzip and target.endswith(".tar.gz"):
            shutil.unpack_archive(target, os.path.dirname(target) or ".")
        return target

    @classmethod
    def upload(cls, src: str, dst: str | None, tar: bool = False, clean: bool = True) -> str:
        """Copy ``src`` to ``dst`` (``.tar.gz`` of it when ``tar``); returns ``dst``.

        With ``clean`` the source is removed afterwards (upstream's default), unless it is the
        destination.
        """
        source = _local(src)
        if dst is None:
            handle, dst = tempfile.mkstemp()
            os.close(handle)
        target = _local(dst)
        if tar:
            archive = shutil.make_archive(
                source, "gztar", os.path.dirname(source) or ".", os.path.basename(source)
            )
            if clean:
                cls.delete(source)
            source = archive
        if os.path.abspath(source) == os.path.abspath(target):
            return target
        cls.copy_file(source, target)
        if clean:
            cls.delete(source)
        return target

    @classmethod
    def dump(cls, obj: Any, dst: str | None = None) -> str:
        """Write ``obj`` with joblib to ``dst`` (a temporary file when ``None``); the path."""
        import joblib  # scikit-learn's dependency; imported only when used

        if dst is None:
            handle, dst = tempfile.mkstemp()
            os.close(handle)
        target = _local(dst)
        cls.make_base_dir(target)
        joblib.dump(obj, target)
        return target

    @classmethod
    def load(cls, src: str) -> Any:
        """Read an object written by :meth:`dump` (joblib)."""
        import joblib

        return joblib.load(_local(src))

    @classmethod
    def dump_pickle(cls, obj: Any, filename: str) -> None:
        """Pickle ``obj`` to ``filename``."""
        target = _local(filename)
        cls.make_base_dir(target)
        with open(target, "wb") as handle:
            pickle.dump(obj, handle)

    @classmethod
    def load_pickle(cls, filename: str) -> Any:
        """The object pickled in ``filename``; ``None`` when there is no such file."""
        local = _local(filename)
        if not os.path.isfile(local):
            return None
        with open(local, "rb") as handle:
            return pickle.load(handle)

    @classmethod
    def get_file_hash(cls, filepath: str) -> str:
        """MD5 hex digest of the file (``""`` when there is none), as upstream."""
        local = _local(filepath) if filepath else ""
        if not (local and os.path.isfile(local)):
            return ""
        digest = hashlib.md5(usedforsecurity=False)
        with open(local, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    @classmethod
    def remove_path_prefix(cls, org_str: str, prefix: str | None) -> str:
        """``org_str`` without the leading ``prefix`` (host path to container path)."""
        if not prefix:
            return org_str
        head = prefix[:-1] if prefix.endswith(os.path.sep) else prefix
        return org_str.replace(head, "", 1) if org_str.startswith(head) else org_str
