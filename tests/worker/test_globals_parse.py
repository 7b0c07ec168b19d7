"""The statement reader of restore-globals (worker/globals_apply.py), without a server: what it splits,
what it classifies, and what it refuses before anything runs."""

from __future__ import annotations

import pytest

from worker.errors import WorkerError
from worker.globals_apply import classify, statements, unquote

DUMP = """--
-- PostgreSQL database cluster dump
--

\\restrict abc123

SET default_transaction_read_only = off;
CREATE ROLE "Weird ""x"" Name";
ALTER ROLE "Weird ""x"" Name" WITH NOSUPERUSER LOGIN PASSWORD 'md5;--not-a-comment';
COMMENT ON ROLE readers IS 'multi
line; -- still the comment ''quoted''';
SECURITY LABEL FOR dummy ON ROLE readers IS E'a\\'b;c';
ALTER ROLE readers SET search_path TO 'app', 'public';
GRANT readers TO "Weird ""x"" Name" WITH ADMIN OPTION, INHERIT TRUE GRANTED BY postgres;
GRANT SET ON PARAMETER work_mem TO readers;
CREATE TABLESPACE fast OWNER postgres LOCATION '/mnt/fast';
GRANT ALL ON TABLESPACE fast TO readers;
REVOKE ALL ON TABLESPACE fast FROM PUBLIC;

\\unrestrict abc123

--
-- PostgreSQL database cluster dump complete
--
"""


def test_statements_respect_quotes_comments_and_meta_commands():
    got = list(statements(DUMP))
    assert len(got) == 11
    assert got[2].endswith("PASSWORD 'md5;--not-a-comment'")
    assert got[3] == "COMMENT ON ROLE readers IS 'multi\nline; -- still the comment ''quoted'''"
    assert got[4] == "SECURITY LABEL FOR dummy ON ROLE readers IS E'a\\'b;c'"
    kinds = [classify(s)[0] for s in got]
    assert kinds == [
        "session",
        "create_role",
        "role_attributes",
        "role_comment",
        "role_label",
        "role_setting",
        "membership",
        "grant_on",
        "tablespace",
        "tablespace",
        "tablespace",
    ]
    assert unquote(classify(got[1])[1]["role"]) == 'Weird "x" Name'
    parts = classify(got[6])[1]
    assert (parts["roles"], parts["members"], parts["grantor"]) == ("readers", '"Weird ""x"" Name"', "postgres")


@pytest.mark.parametrize(
    "sql, message",
    [
        ("DROP ROLE readers;", "does not apply"),
        ("CREATE ROLE x; ALTER ROLE x RENAME TO y;", "does not apply"),
        ("\\connect other\nCREATE ROLE x;", r"meta-command \\connect"),
        ("CREATE ROLE x; COMMENT ON ROLE x IS 'cut", "inside a quoted string"),
        ("CREATE ROLE x; ALTER ROLE x WITH LOGIN", "inside a statement"),
    ],
)
def test_what_is_refused_before_anything_runs(sql, message):
    with pytest.raises(WorkerError, match=message):
        for s in statements(sql):
            classify(s)
