#!/bin/sh
# The image's entrypoint is `vfl`: `docker run IMAGE serve --config ...` and
# `docker run IMAGE vfl serve --config ...` both run `vfl serve --config ...`.
set -e
if [ "${1:-}" = vfl ]; then
    shift
fi
exec vfl "$@"
