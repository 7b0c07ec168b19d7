"""The dump scanner: large-object transaction control found by position, everything else untouched."""

from __future__ import annotations

import random

import pytest

from testsupport.safety_data import full_fingerprint
from worker.sqlstream import BEGIN_REPLACEMENT, COMMIT_REPLACEMENT, DumpScanner

DUMP = b"""--
-- PostgreSQL database dump
--
SET lock_timeout = 0;

--
-- Name: f(); Type: FUNCTION; Schema: public; Owner: app
--

CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $$
-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -
BEGIN;
COMMIT;
$$;

--
-- Name: t; Type: TABLE; Schema: public; Owner: app
--

CREATE TABLE public.t (x text);
SELECT pg_catalog.lo_create('16385');
SELECT pg_catalog.lo_create('16386');

--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app
--

COPY public.t (x) FROM stdin;
-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -
BEGIN;
COMMIT;
\\\\.
\\.

--
-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -
--

BEGIN;

SELECT pg_catalog.lo_open('16385', 131072);
SELECT pg_catalog.lowrite(0, '\\x6869');
SELECT pg_catalog.lo_close(0);

COMMIT;

--
-- Name: LARGE OBJECTS 16386..16386; Type: BLOBS; Schema: -; Owner: -
--

BEGIN;

SELECT pg_catalog.lo_open('16386', 131072);
SELECT pg_catalog.lo_close(0);

COMMIT;

--
-- PostgreSQL database dump complete
--
"""


def _expected() -> bytes:
    head, _, tail = DUMP.partition(b"--\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n")
    tail = tail.replace(b"BEGIN;\n", BEGIN_REPLACEMENT).replace(b"COMMIT;\n", COMMIT_REPLACEMENT)
    return head + b"--\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n" + tail


@pytest.mark.parametrize("seed", range(40))
def test_only_the_large_object_sections_change_whatever_the_chunking(seed):
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(DUMP)), rnd.randint(0, 60))) if seed else []
    parts = [DUMP[a:b] for a, b in zip([0, *cuts], [*cuts, len(DUMP)], strict=True)]
    s = DumpScanner()
    out = b"".join(s.scan(parts))
    assert out == _expected()
    assert s.rewritten == 4 and s.large_objects == 2 and s.connects == 0
    assert s.types["FUNCTION"] == 1 and s.types["TABLE"] == 1 and s.types["BLOBS"] == 2


# What pg_dump writes before the large objects in real databases: a comment whose text holds `$$`
# (was taken for the start of a dollar-quoted body, hiding every later header), a name with an
# apostrophe in a TOC comment, a multi-line literal imitating a whole large-object section, and an
# identifier with `$` in it.
QUOTING = b"""--
-- Name: TABLE t; Type: COMMENT; Schema: public; Owner: app
--

COMMENT ON TABLE public.t IS 'costs $$ and $tag$';

--
-- Name: o'brien; Type: TABLE; Schema: public; Owner: app
--

CREATE TABLE public."o'brien" (x text);
COMMENT ON COLUMN public."o'brien".x IS 'line one
-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -
--

BEGIN;
COMMIT;
';
CREATE TABLE public.a$b$ (x int);
"""


@pytest.mark.parametrize("seed", range(20))
def test_quoted_text_never_hides_or_fakes_a_header(seed):
    rnd = random.Random(seed)
    data = QUOTING + DUMP
    cuts = sorted(rnd.sample(range(1, len(data)), rnd.randint(0, 60))) if seed else []
    parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    s = DumpScanner()
    out = b"".join(s.scan(parts))
    assert out == QUOTING + _expected()  # the literal's BEGIN/COMMIT untouched, the real ones rewritten
    assert s.rewritten == 4 and s.large_objects == 2
    assert s.types["COMMENT"] == 1 and s.types["TABLE"] == 2 and s.types["BLOBS"] == 2


def test_an_unknown_layout_is_left_alone():
    odd = b"--\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\nSELECT 1;\nBEGIN;\nCOMMIT;\n"
    s = DumpScanner()
    assert b"".join(s.scan([odd])) == odd and s.rewritten == 0


def test_connect_is_counted():
    s = DumpScanner()
    b"".join(s.scan([b"SELECT 1;\n\\connect other\n"]))
    assert s.connects == 1


@pytest.mark.integration
@pytest.mark.parametrize("major", [13, 18])  # pg_dump 15 (one section) and 18 (batches of 1000)
def test_thousands_of_large_objects_restore_over_their_source(pg_pool, minio, bucket, make_worker, major):
    server = pg_pool.get(major)
    server.create_database("blobs")
    with server.connect("blobs") as c:
        c.execute("SELECT count(lo_from_bytea(0, convert_to('object ' || g, 'UTF8'))) FROM generate_series(1, 2500) g")
        c.execute("CREATE TABLE after_blobs (id int PRIMARY KEY); CREATE INDEX after_blobs_i ON after_blobs (id)")
        before = full_fingerprint(c, with_oids=False)
    w = make_worker(server, minio, bucket, "blobs")
    assert w.run("backup").returncode == 0
    r = w.run("restore", "--object", "latest", "--force")  # in place: the same 2,500 OIDs exist
    assert r.returncode == 0, r.stderr
    with server.connect("blobs") as c:
        assert full_fingerprint(c, with_oids=False) == before


ROWS_SQL = (
    b"-- Name: items; Type: TABLE; Schema: public; Owner: x\n"
    b"CREATE FUNCTION f() RETURNS text AS $$\nCOPY fake.t (a) FROM stdin;\n1\n\\.\n$$ LANGUAGE sql;\n"
    b"COPY public.items (id, name) FROM stdin;\n1\ta\n2\t\\\\.\n3\tc\n\\.\n"
    b'COPY "We (ird)"."T x" (a) FROM stdin;\n\\.\n'
    b'COPY sales."Order" FROM stdin;\n1\n2\n\\.\n'
)


@pytest.mark.parametrize("passthrough", [True, False])
def test_row_counts_survive_any_chunking(passthrough):
    """The backup's row counts (for restore drills): exact whatever the chunk boundaries, and a
    COPY inside a function body or an escaped backslash-dot in a row is not data or a terminator."""
    expected = {"public.items": 3, '"We (ird)"."T x"': 0, 'sales."Order"': 2}
    for size in range(1, len(ROWS_SQL) + 1):
        d = DumpScanner(passthrough=passthrough)
        out = b""
        for i in range(0, len(ROWS_SQL), size):
            out += b"".join(d.feed(ROWS_SQL[i : i + size]))
        out += b"".join(d.finish())
        assert dict(d.rows) == expected, size
        if passthrough:
            assert out == ROWS_SQL


def test_a_dollar_quote_closed_right_after_text_ends_the_body():
    """pg_dump writes a SQL function as `AS $$SELECT x * 2$$;`: the closing tag is glued to the body.
    Missing it would leave the rest of the dump "inside the body": no COPY counted, no large-object
    section found (a restore with large objects would then be refused by the commit guard)."""
    sql = (
        b"CREATE FUNCTION extra.double(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$SELECT x * 2$$;\n"
        b"CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $body$BEGIN RETURN 'a$$b'; END$body$;\n"
        b"COPY public.items (id) FROM stdin;\n1\n2\n\\.\n"
        b"-- Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n"
        b"BEGIN;\n"
        b"SELECT pg_catalog.lo_open('16400', 131072);\n"
        b"COMMIT;\n"
    )
    for size in (1, 7, len(sql)):
        d = DumpScanner()
        out = b""
        for i in range(0, len(sql), size):
            out += b"".join(d.feed(sql[i : i + size]))
        out += b"".join(d.finish())
        assert dict(d.rows) == {"public.items": 2}, size
        assert d.rewritten == 2 and BEGIN_REPLACEMENT in out and COMMIT_REPLACEMENT in out, size
