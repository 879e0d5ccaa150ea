#!/usr/bin/env bash
# Prepares this machine for connstorm: system packages (PostgreSQL server,
# PgBouncer, Python venv support), then the virtual environment with connstorm
# and its test extras. Idempotent and quick when everything is there.
#
#   usage: scripts/bootstrap.sh [--with-test-tools]
#
# As root it installs missing Debian packages itself; as any other user it
# stops with one line naming exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_tools=0
[[ ${1:-} == --with-test-tools ]] && want_test_tools=1

missing=()
have_pg_bin() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; }
have_pg_bin || missing+=(postgresql)
command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# PgBouncer 1.21+ (prepared statements in transaction mode) is built from Debian
# 13's source when the installed one is older: these are its Debian 12 build deps.
if [[ -f /etc/debian_version ]]; then
  command -v cc >/dev/null || missing+=(build-essential)
  command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  for pair in libevent:libevent-dev libcares:libc-ares-dev openssl:libssl-dev; do
    pkg-config --exists "${pair%%:*}" 2>/dev/null || missing+=("${pair##*:}")
  done
fi
if (( want_test_tools )); then
  command -v chromium >/dev/null || missing+=(chromium)
  command -v wrk >/dev/null || missing+=(wrk)
fi

if (( ${#missing[@]} )); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${missing[*]} with apt-get..." >&2
    # Debian's server package would create and start a "main" cluster on 5432;
    # connstorm runs its own clusters, so keep the machine's port free.
    mkdir -p /etc/postgresql-common
    if [[ ! -f /etc/postgresql-common/createcluster.conf ]]; then
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 4
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
stamp=.venv/.connstorm-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "bootstrap: installing connstorm and its test extras into .venv..." >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test,drivers]'
  touch "$stamp"
fi

# A PgBouncer that tracks prepared statements (1.21+) beside Debian 12's 1.18, built
# once per machine into connstorm's cache (~/.cache/connstorm/pgbouncer); a no-op
# when one is there. `connstorm drivers` runs every driver through both.
.venv/bin/python -m connstorm.local_stack.pgbouncer_binaries

# cfn-lint and the SAM CLI (tests/deploy lint deploy/template.yaml with them)
# get a virtual environment of their own: aws-sam-cli pins many dependencies
# that would fight the project's, and cfn-lint brings sympy and networkx the
# project venv was slimmed of. Pinned, so CI lints with the same rules; the
# stamp holds the pins, so a changed pin reinstalls and an unchanged one is a no-op.
if (( want_test_tools )); then
  tools_spec="aws-sam-cli==1.170.0 cfn-lint==1.58.0"
  tools_stamp=.venv-tools/.connstorm-installed
  if [[ ! -x .venv-tools/bin/python ]]; then
    python3 -m venv .venv-tools
  fi
  if [[ ! -f $tools_stamp || $(<"$tools_stamp") != "$tools_spec" ]]; then
    echo "bootstrap: installing $tools_spec into .venv-tools..." >&2
    # shellcheck disable=SC2086 # the spec is a list of requirements
    .venv-tools/bin/python -m pip install -q --disable-pip-version-check $tools_spec
    echo "$tools_spec" >"$tools_stamp"
  fi
fi
