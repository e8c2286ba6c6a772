#!/usr/bin/env bash
# Builds the Dockerfile and checks the image from the outside, without a Docker daemon:
#   1. `decision demo --once` inside the image (its examples come from the installed package),
#   2. the image's HEALTHCHECK command, and a health check made from the host,
#   3. a Decide sent from the host to the image's default command (serve) and its answer checked.
# Uses podman/buildah with chroot isolation (no daemon, no user namespaces needed). Where the base image
# cannot be pulled, a stand-in python:3.11-slim is made with debootstrap (Debian bookworm minbase + Python 3.11)
# and kept in a cache (IMAGE_CHECK_CACHE, default ~/.cache/inbound-decisioning) for later runs.
#
#   scripts/image_check.sh            run the check; exit 0 when it passed, 1 when it failed
#   IMAGE_CHECK_OPTIONAL=1 ...        exit 0 with a clear "skipped:" line where podman/buildah are missing
#
# Run it through ./dev (the host side uses the project's venv): ./dev scripts/image_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
tag=localhost/inbound-decisioning:check
base=python:3.11-slim
cache=${IMAGE_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inbound-decisioning}
workdir=$(mktemp -d)
container=""
server_pid=""

say() { echo "image check: $*" >&2; }
skip() {
    if [[ ${IMAGE_CHECK_OPTIONAL:-0} == 1 ]]; then say "skipped: $*"; exit 0; fi
    say "cannot run: $*"; exit 1
}
cleanup() {
    if [[ -n $server_pid ]]; then kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; fi
    if [[ -n $container ]]; then buildah rm "$container" >/dev/null 2>&1; fi
    rm -rf "$workdir"
}
trap cleanup EXIT

for tool in podman buildah; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (Debian: apt-get install podman buildah debootstrap)"
done

# The base image: a local one, else the registry, else a debootstrap stand-in (this sandbox has no registry).
if ! podman image exists "$base" && ! podman image exists "localhost/$base"; then
    if ! timeout 60 podman pull -q "docker.io/library/$base" >/dev/null 2>&1; then
        stand_in=$cache/python-3.11-slim.tar
        if [[ ! -f $stand_in ]]; then
            command -v debootstrap >/dev/null || skip "no $base image and no debootstrap to make a stand-in"
            say "no $base to pull: making a stand-in with debootstrap (bookworm minbase + Python 3.11, about a minute)"
            mkdir -p "$cache"
            debootstrap --variant=minbase \
                --include=python3.11,python3.11-venv,python3.11-dev,python3-pip,python-is-python3,ca-certificates \
                bookworm "$workdir/rootfs" http://deb.debian.org/debian >"$workdir/debootstrap.log" 2>&1 \
                || { tail -20 "$workdir/debootstrap.log" >&2; skip "debootstrap failed"; }
            tar -C "$workdir/rootfs" -cf "$stand_in.part" . && mv "$stand_in.part" "$stand_in"
            rm -rf "$workdir/rootfs"
        fi
        podman import -q "$stand_in" "localhost/$base" >/dev/null
    fi
fi

# The machine's pip configuration (an index mirror, a CA bundle) reaches the build's RUN steps as read-only mounts.
mounts=()
for path in /etc/pip.conf /etc/xdg/pip "${PIP_CONFIG_FILE:-}" "${PIP_CERT:-}" "${PIP_FIND_LINKS:-}" \
    /etc/ssl/certs/ca-certificates.crt; do
    [[ -n $path && -e $path ]] && mounts+=(-v "$path:$path:ro")
done

say "building $tag"
if ! podman build --format docker --isolation=chroot "${mounts[@]}" -t "$tag" . >"$workdir/build.log" 2>&1; then
    tail -30 "$workdir/build.log" >&2
    say "FAILED: the image does not build"
    exit 1
fi
container=$(buildah from -q "$tag")
run() { buildah run --isolation chroot "$container" -- "$@"; }

say "1. decision demo --once inside the image"
if ! run decision demo --once --port 0 >"$workdir/demo.log" 2>&1 || ! grep -q "vip_early_access" "$workdir/demo.log"; then
    tail -30 "$workdir/demo.log" >&2
    say "FAILED: the demo did not show its decisions"
    exit 1
fi

# A free port on the host: chroot isolation shares the host's network.
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "2. the image's default command (serve) on port $port, with the sample audiences"
run decision serve --port "$port" --rules /app/examples/retail/rules.yaml \
    --load-audiences /app/examples/retail/audiences.csv >"$workdir/serve.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 120))
until DECISION_PORT=$port python -m decision.cli.healthcheck 2>/dev/null; do
    if ! kill -0 "$server_pid" 2>/dev/null || ((SECONDS > deadline)); then
        tail -30 "$workdir/serve.log" >&2
        say "FAILED: the server in the image never reported SERVING to a health check from the host"
        exit 1
    fi
    sleep 0.2
done
if ! run env DECISION_PORT="$port" python -m decision.cli.healthcheck; then
    say "FAILED: the image's HEALTHCHECK command reported the server unhealthy"
    exit 1
fi

say "3. a Decide from the host"
answer=$(decision decide --target "127.0.0.1:$port" --profile p-1001 --channel web --placement home_banner --json)
if ! grep -q '"vip_early_access"' <<<"$answer"; then
    echo "$answer" >&2
    say "FAILED: the Decide from the host did not get the VIP banner for p-1001"
    exit 1
fi

# SIGTERM to the server itself, as Kubernetes or `docker stop` sends it (buildah would kill it outright).
pkill -TERM -f "python /opt/venv/bin/decision serve --port $port "
if ! wait "$server_pid" || ! grep -q "stopped" "$workdir/serve.log"; then
    tail -20 "$workdir/serve.log" >&2
    say "FAILED: the server did not exit cleanly on SIGTERM"
    exit 1
fi
server_pid=""
say "passed in $((SECONDS - started)) s (image $(podman image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec))"
