#!/bin/sh
# The image's entrypoint is `vfl`: `docker run IMAGE serve --config ...` and
# `docker compose run bank vfl run ...` both run `vfl` with the rest of the arguments.
set -e
if [ "${1:-}" = vfl ]; then
    shift
fi
exec /opt/vfl/bin/vfl "$@"
