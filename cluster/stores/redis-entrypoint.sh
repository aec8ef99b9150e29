#!/bin/sh
# As the official redis image's entrypoint: options alone run redis-server with them, and
# protected mode is off (the pod's network, not Redis, is the boundary; without a password
# protected mode refuses every client but loopback). Redis listens on all addresses by default.
set -eu
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
