"""The split of a parallel backup (worker/parallel.py): which table goes to which part, and the
pg_dump arguments of each part. Pure functions; the integration tests run them against servers."""

from __future__ import annotations

from worker.parallel import MIN_SPLIT_BYTES, Table, assign, part_args

MiB = 1 << 20


def test_large_tables_spread_longest_first_small_ones_stay_in_part_zero() -> None:
    tables = [Table("public", n, s * MiB) for n, s in (("a", 50), ("b", 40), ("c", 30), ("d", 20))]
    tiny = [Table("public", f"t{i}", 1000) for i in range(500)]
    bins = assign(tables + tiny, 3)
    assert [sorted(t.name for t in b if not t.name.startswith("t")) for b in bins] == [["c", "d"], ["a"], ["b"]]
    assert all(t in bins[0] for t in tiny)  # never a part of their own
    assert sum(len(b) for b in bins) == len(tables) + len(tiny)  # each table in exactly one part


def test_fewer_large_tables_than_jobs_leaves_parts_empty() -> None:
    bins = assign([Table("s", "only", MIN_SPLIT_BYTES), Table("s", "small", MIN_SPLIT_BYTES - 1)], 4)
    assert [len(b) for b in bins] == [1, 1, 0, 0]


def test_patterns_quote_what_pg_dump_would_read_as_wildcards_or_separators() -> None:
    assert Table("public", "a*b", 0).pattern == '"public"."a*b"'
    assert Table("x", "y.z", 0).pattern == '"x"."y.z"'
    assert Table('Sch"ema', 'Quo"te', 0).pattern == '"Sch""ema"."Quo""te"'


def test_part_zero_excludes_the_data_the_other_parts_dump() -> None:
    bins = [[Table("public", "small", 1)], [Table("public", "a*b", 9)], [Table("x", "y", 8)]]
    assert part_args(0, "00000003-1", bins) == [
        "--snapshot=00000003-1",
        '--exclude-table-data="public"."a*b"',
        '--exclude-table-data="x"."y"',
    ]
    assert part_args(2, "00000003-1", bins) == ["--snapshot=00000003-1", "--data-only", '--table="x"."y"']
