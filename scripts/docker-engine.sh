#!/usr/bin/env bash
# Makes a Docker engine available for the `docker`-marked tests when this
# machine can have one: as root, with an engine installer provided by the
# machine (DOCKER_ENGINE_INSTALLER, by default the development machines' copy
# beside the project; it installs the engine, starts it without a bridge network
# and builds a Debian base image). Anywhere else, or if that fails, it says so in
# one line and the docker tests skip with a reason. Never fails the test command.
set -uo pipefail
cd "$(dirname "$0")/.."
script=${DOCKER_ENGINE_INSTALLER:-../shared/tools/docker-engine.sh}
if docker info >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) != 0 || ! -f $script ]]; then
  echo "docker-engine: no Docker engine answers; the docker tests will skip" >&2
  exit 0
fi
echo "docker-engine: starting a Docker engine for the docker tests (first time: a few minutes)..." >&2
if ! bash "$script" >/dev/null; then
  echo "docker-engine: could not start one (see \${DOCKER_ENGINE_LOG:-/tmp/docker-engine.log}); the docker tests will skip" >&2
fi
exit 0
