#!/usr/bin/env bash
# Makes a Docker engine available for the `docker`-marked tests when this
# machine can have one: as root, with an engine installer provided by the
# machine (DOCKER_ENGINE_INSTALLER, by default the development machines' copy
# beside the project; it installs the engine, starts it without a bridge network
# and builds a Debian base image). Anywhere else, or if that fails, it says so in
# one line and the docker tests skip with a reason. Never fails the test command.
#
# The installer starts dockerd with the vfs storage driver, which copies the whole
# image (about 700 MB) for every container: measured here, test_compose took
# 232-448 s on vfs and 171 s on overlay2. So this script first tries to start the
# engine itself with overlay2 (same flags otherwise: no bridge network, no
# iptables, so containers use host networking only) and leaves the installer to
# fall back to vfs where overlay2 cannot run (an overlay backing file system, an
# old kernel).
set -uo pipefail
cd "$(dirname "$0")/.."
script=${DOCKER_ENGINE_INSTALLER:-../shared/tools/docker-engine.sh}
log=${DOCKER_ENGINE_LOG:-/tmp/docker-engine.log}
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) != 0 || ! -f $script ]]; then
  echo "docker-engine: no Docker engine answers; the docker tests will skip" >&2
  exit 0
fi
echo "docker-engine: starting a Docker engine for the docker tests (first time: a few minutes)..." >&2

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 \
    || ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq >>"$log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap \
    >>"$log" 2>&1
fi
if command -v dockerd >/dev/null 2>&1; then
  setsid dockerd --bridge=none --iptables=false --storage-driver=overlay2 >>"$log" 2>&1 </dev/null &
  engine=$!
  for _ in $(seq 1 30); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$engine" 2>/dev/null || break   # the driver refused: dockerd has exited
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    kill "$engine" 2>/dev/null
    wait "$engine" 2>/dev/null
    echo "docker-engine: overlay2 storage is not available here; using vfs (slower)" >&2
  fi
fi

if ! bash "$script" >/dev/null; then
  echo "docker-engine: could not start one (see $log); the docker tests will skip" >&2
fi
exit 0
