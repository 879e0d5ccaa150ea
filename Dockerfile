# One image for the whole connstorm stack: PostgreSQL 15 and PgBouncer from
# Debian's packages (the versions the native stack uses), Python with connstorm
# and its handlers. Every compose service and the testcontainers backend run it
# with a different command (see local_stack/compose_entry.py).
#
#   docker build -t connstorm:latest .
#   # where no registry is reachable (a local Debian base image, see README):
#   docker build --network host --build-arg BASE_IMAGE=debian-base:bookworm -t connstorm:latest .
#
# Behind a TLS-intercepting proxy, hand its CA certificates (PEM, not secret)
# to the build: --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)"
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE} AS system

# Metadata first and few layers after the big ones: with the vfs storage driver
# every step copies the whole image so far, so steps after the installs are dear.
ARG EXTRA_CA_CERTS=""
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/connstorm \
    PATH=/opt/connstorm/venv/bin:/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
# tini reaps the emulator's execution environments and forwards signals.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["connstorm", "--help"]

# Debian's server package would create a "main" cluster; connstorm makes its own.
# With vfs storage every container start copies the whole image, so what no
# server here uses stays out: LLVM and Z3 (PostgreSQL's optional JIT, about
# 130 MB; without llvmjit.so the server turns JIT off by itself), translations
# (messages stay English, as the error classifier expects), and the .debs a
# debootstrap base keeps. dpkg's path-exclude keeps its database consistent.
RUN set -eux; \
    mkdir -p /etc/postgresql-common /etc/dpkg/dpkg.cfg.d; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
    printf '%s\n' 'path-exclude=/usr/lib/*/libLLVM*' \
        'path-exclude=/usr/lib/*/libz3*' \
        'path-exclude=/usr/lib/postgresql/*/lib/llvmjit*' \
        'path-exclude=/usr/lib/postgresql/*/lib/bitcode/*' \
        'path-exclude=/usr/share/locale/*' \
        > /etc/dpkg/dpkg.cfg.d/connstorm-slim; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        postgresql-15 pgbouncer python3 python3-venv ca-certificates tini; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/connstorm-extra.crt; \
        update-ca-certificates; \
    fi; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
        /usr/share/locale/* /usr/share/i18n; \
    groupadd --system --gid 10001 connstorm; \
    useradd --system --uid 10001 --gid connstorm --home-dir /home/connstorm --create-home \
        --shell /usr/sbin/nologin connstorm; \
    mkdir -p /var/lib/connstorm/pgdata /var/lib/connstorm/secrets /var/run/connstorm /runs; \
    chown -R connstorm:connstorm /var/lib/connstorm /var/run/connstorm /runs; \
    chmod 0700 /var/lib/connstorm/pgdata /var/lib/connstorm/secrets

# Dependencies from pyproject.toml alone, so that a source change does not
# reinstall them. The sources themselves are on PYTHONPATH (no install step:
# one layer less); the console script is a two-line wrapper.
COPY pyproject.toml /tmp/connstorm-pyproject.toml
RUN set -eux; \
    python3 -m venv /opt/connstorm/venv; \
    python3 -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
        /tmp/connstorm-pyproject.toml > /tmp/requirements.txt; \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt /tmp/connstorm-pyproject.toml; \
    printf '#!/bin/sh\nexec /opt/connstorm/venv/bin/python -m connstorm "$@"\n' > /usr/local/bin/connstorm; \
    chmod 0755 /usr/local/bin/connstorm

# Flatten into a fresh root. A base made with debootstrap and `docker import`
# (where no registry is reachable) can have / at mode 0700, which locks every
# user but root out; the mode of / is not part of any layer, so no RUN can fix
# it. Metadata first: on an empty image those steps cost nothing.
FROM scratch
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    HOME=/home/connstorm \
    PATH=/opt/connstorm/venv/bin:/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /app
# tini reaps the emulator's execution environments and forwards signals.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["connstorm", "--help"]
# Servers refuse root, and nothing here needs it.
USER connstorm
COPY --from=system / /
COPY . /app
