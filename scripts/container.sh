#!/usr/bin/env bash
# Build and run the entry's image with podman, on a machine with no Docker engine and no image registry.
#   bash scripts/container.sh setup        install podman (Debian, as root), configure it, build a local
#                                          stand-in for python:3.11-slim (once)
#   bash scripts/container.sh build [TAG]  build the image from ./Dockerfile (default tag cinc2020)
# Everything machine-specific (package mirror, CA certificates, file limits, local wheels) is read here, at
# run time, and never written into the repository. Elsewhere, `docker build -t cinc2020 .` is all it takes.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=localhost/python:3.11-slim

setup() {
    if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v mmdebstrap >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc mmdebstrap >/dev/null
    fi
    # podman's default runtime (crun) fails on these machines' cgroups, and its default ulimits exceed
    # their hard limits.
    local conf=/etc/containers/containers.conf
    if [ ! -e "$conf" ]; then
        local files
        files=$(ulimit -Hn)
        mkdir -p /etc/containers
        printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\n' \
            "$files" "$files" > "$conf"
    fi
    if ! podman image exists "$BASE"; then
        local mirror
        mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 | awk '{print $2}')
        mirror=${mirror:-http://deb.debian.org/debian}
        # Debian's python3 as python:3.11-slim: pip may install system-wide, `python` exists, and the
        # machine's CA certificates are trusted (the package index may sit behind this machine's proxy).
        mmdebstrap --quiet --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
            --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
            --customize-hook='ln -sf python3 "$1"/usr/bin/python' \
            --customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share' \
            --customize-hook='chroot "$1" update-ca-certificates' \
            bookworm - "$mirror" | podman import - "$BASE" >/dev/null
    fi
}

build() {
    local tag=${1:-cinc2020}
    local extra=()
    if [ -d /opt/wheels ]; then  # a local CPU build of torch, where this machine has one
        extra+=(--volume /opt/wheels:/opt/wheels:ro --build-arg PIP_FIND_LINKS=/opt/wheels)
    fi
    podman build --quiet "${extra[@]}" --tag "$tag" .
}

case "${1:-}" in
    setup) setup ;;
    build) build "${2:-}" ;;
    *) echo "usage: $0 setup | build [TAG]" >&2; exit 2 ;;
esac
