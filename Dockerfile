# vfl party image: `vfl` is the entrypoint, e.g. `docker run IMAGE serve --config /etc/vfl/party.yaml`.
# Build with `make image` (a wheelhouse first, so `docker build` needs no network). Everything a
# party owns is mounted, never baked in (docs/deployment.md, "Containers"):
#   /etc/vfl/party.yaml   the party config (and the job YAMLs of a guest)
#   /etc/vfl-tls/         ca.pem, <party>.pem, <party>.key
#   /data/                raw data files (read-only), unless the dataset is a database URL
#   /var/lib/vfl/store    the party's store: job records, checkpoints, model parts
#   /var/lib/vfl/out      reports and batch scores
# Any base with python3 (3.11, the wheelhouse's version) and the venv module works.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS deps
# The dependencies: their own stage and runtime layer, rebuilt only when the wheelhouse's deps/
# change. Left out: the libraries' own test suites, torch's C++ headers and test binaries (about
# 400 MB) and Arrow Flight (about 32 MB, Arrow's own RPC: vfl speaks gRPC); nothing imports them.
# vfl itself comes from /opt/vfl-app (the .pth file).
COPY wheelhouse/deps/ /wheelhouse/deps/
RUN python3 -m venv /opt/vfl \
 && /opt/vfl/bin/pip install --no-index --no-cache-dir --disable-pip-version-check /wheelhouse/deps/*.whl \
 && cd /opt/vfl/lib/python3*/site-packages \
 && find . -depth -type d -name tests -exec rm -rf {} + \
 && rm -rf torch/test torch/include torch/bin/test_* torch/bin/*Test pyarrow/include \
           pyarrow/libarrow_flight.so* pyarrow/libarrow_python_flight.so* pyarrow/_flight.*.so pyarrow/flight.py \
 && echo /opt/vfl-app > vfl-app.pth

FROM deps AS app
# vfl: a small layer of its own, rebuilt on every change of the project
COPY wheelhouse/app/ /wheelhouse/app/
RUN /opt/vfl/bin/pip install --no-index --no-cache-dir --disable-pip-version-check --no-deps \
        --target /opt/vfl-app /wheelhouse/app/*.whl \
 && /opt/vfl/bin/pip check --disable-pip-version-check

FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vfl \
 && mkdir -p /etc/vfl /etc/vfl-tls /data /var/lib/vfl/store /var/lib/vfl/out \
 && chown -R vfl:vfl /var/lib/vfl
COPY --from=deps /opt/vfl /opt/vfl
COPY --from=app /opt/vfl-app /opt/vfl-app
COPY deploy/docker-entrypoint.sh /usr/local/bin/vfl-entrypoint
ENV PATH=/opt/vfl-app/bin:/opt/vfl/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /var/lib/vfl
# The service's own check: this party's certificate calls its own service's Health over mutual TLS.
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["vfl", "health", "--config", "/etc/vfl/party.yaml"]
ENTRYPOINT ["/usr/local/bin/vfl-entrypoint"]
CMD ["--help"]
