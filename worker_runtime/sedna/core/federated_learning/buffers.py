"""Receive buffers reused across rounds.

Every round brings each model's bytes again, of the same size. Fresh memory for them is
costly: the kernel faults in every page on its first write, which for a 100 MB model costs
as much as moving it over loopback (and far more when numpy asks for huge pages, which this
kind of virtual machine hands out slowly). A :class:`BufferPool` hands out a buffer that
nothing uses any more instead, and makes new ones as anonymous memory maps: ordinary pages,
never zero-filled by Python (a ``bytearray`` would be, before the chunks overwrite it).

"Nothing uses it" is read from CPython's reference count of the buffer's memory map: every
user of its bytes holds a reference to it (memoryviews through their export, numpy arrays
made with ``np.frombuffer`` and all their views through their base), so a buffer is free
exactly when the pool's own reference is the only one left. A buffer still referenced is
never reused; the worst a stray reference does is cost a fresh allocation.
"""

from __future__ import annotations

import mmap
import sys
import threading

# Below this a fresh allocation is cheap and pooling is not worth holding the memory.
MIN_POOLED_BYTES = 1 << 20
# sys.getrefcount of a list item: the list's reference plus the call's argument.
_ONLY_THE_POOL = 2


class BufferPool:
    """Hands out byte buffers, reusing those no longer referenced.

    ``keep``: how many buffers the pool may hold (in use or free); beyond it, free ones are
    dropped oldest first. Thread-safe.
    """

    def __init__(self, keep: int, min_bytes: int = MIN_POOLED_BYTES) -> None:
        if keep < 1:
            raise ValueError(f"a buffer pool must keep at least one buffer, got {keep}")
        self.keep = keep
        self.min_bytes = min_bytes
        self._buffers: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.reused = 0
        self.allocated = 0

    def take(self, size: int) -> memoryview:
        """A writable buffer of ``size`` bytes (contents undefined)."""
        if size < self.min_bytes:
            return memoryview(bytearray(size))
        with self._lock:
            for index in range(len(self._buffers)):
                if len(self._buffers[index]) == size and self._is_free(index):
                    self.reused += 1
                    # Move it to the end: the most recently used are the last dropped.
                    buffer = self._buffers.pop(index)
                    self._buffers.append(buffer)
                    return memoryview(buffer)
            self._make_room()
            buffer = mmap.mmap(-1, size)
            self._buffers.append(buffer)
            self.allocated += 1
            return memoryview(buffer)

    def _is_free(self, index: int) -> bool:
        return sys.getrefcount(self._buffers[index]) <= _ONLY_THE_POOL

    def _make_room(self) -> None:
        index = 0
        while len(self._buffers) >= self.keep and index < len(self._buffers):
            if self._is_free(index):
                del self._buffers[index]
            else:
                index += 1
        if len(self._buffers) >= self.keep:
            # All held buffers are in use: forget the oldest (it lives on with its users).
            del self._buffers[0]

    def held_bytes(self) -> int:
        """Bytes of the buffers the pool holds (in use or free)."""
        with self._lock:
            return sum(len(buffer) for buffer in self._buffers)
