# One image for the GM (`sedna gm`), the LC (`sedna lc`) and the workers (`python <script>`,
# with the worker library importable as `sedna`). Build: docker build -t sedna-py:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY apis apis
COPY apiserver apiserver
COPY broker broker
COPY gm gm
COPY kb kb
COPY lc lc
COPY proto proto
COPY sedna_cli sedna_cli
COPY worker_runtime worker_runtime
RUN python -m venv /opt/sedna \
 && /opt/sedna/bin/pip install --no-cache-dir . \
 # The gRPC code of the weight exchange, generated now: the root filesystem is read-only later.
 && /opt/sedna/bin/python -c "import sedna.proto; sedna.proto.federated()"

FROM python:3.11-slim
COPY --from=build /opt/sedna /opt/sedna
COPY examples /opt/sedna/examples
ENV PATH=/opt/sedna/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin sedna
USER 10001
ENTRYPOINT ["sedna"]
CMD ["--help"]
