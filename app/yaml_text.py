"""YAML text for plain JSON documents, byte for byte what cdk8s writes for them.

cdk8s writes each object with the `yaml` npm package (2.x: YAML 1.1 schema, lineWidth 0, sequences
indented under their key). Handing a 9 KB CronJob to the jsii kernel costs ~6 ms (the value is
walked and converted on both sides), so a fleet of 1,000 databases spent over half its synth in
that hand-over; app/chart.py writes the fleet's CronJobs with this module instead.

Only what this module is sure of is written: block maps and sequences, integers, booleans, and
strings of printable ASCII without document markers. Anything else (floats, nulls, non-ASCII or
multi-line strings, a sequence directly in a sequence, keys over 1,000 characters, keys that are
array indices) raises
NotPlain, and the caller lets cdk8s write the document. tests/app/test_yaml_text.py compares the
text with cdk8s's own `Yaml.stringify` on every document the test configs produce and on a corpus of
tricky scalars.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any


class NotPlain(ValueError):
    """A value this module does not write (cdk8s does)."""


_PRINTABLE = re.compile(r"[\x20-\x7e]+\Z")
# Where the package refuses a plain scalar (its plainString, single-line case): an indicator first,
# a lone '-' or '?', ': ' or ' #' inside, or a blank or ':' last.
_NOT_PLAIN = re.compile(r"^[\t ,\[\]{}#&*!|>'\"%@`]|^[?-]\Z|^[?-][ \t]|:[ \t]|[\t ]#|[\t :]\Z")
# Plain scalars the YAML 1.1 schema would read as something other than a string: these are quoted.
_OTHER_TYPE = re.compile(
    "|".join(
        f"(?:{pattern})\\Z"
        for pattern in (
            r"(?:Y|y|[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)",  # bool
            r"(?:N|n|[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)",
            r"(?:~|[Nn]ull|NULL)?",  # null
            r"[-+]?0b[0-1_]+",  # int
            r"[-+]?0[0-7_]+",
            r"[-+]?[0-9][0-9_]*",
            r"[-+]?0x[0-9a-fA-F_]+",
            r"(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)",  # float
            r"[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+",
            r"[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*",
            r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+",  # sexagesimal int and float
            r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
            r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"  # timestamp
            r"(?:(?:t|T|[ \t]+)([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2}(\.[0-9]+)?)"
            r"(?:[ \t]*(Z|[-+][012]?[0-9](?::[0-9]{2})?))?)?",
        )
    )
)
# A JavaScript object lists keys like these first, in numeric order, whatever order they were set in
_INDEX = re.compile(r"(?:0|[1-9][0-9]{0,9})\Z")
_MAX_KEY = 1000  # the package writes keys over 1,024 characters as explicit `? key`
_MAX_INT = 2**53  # beyond this a JavaScript number is no longer the integer


def document(doc: dict[str, Any]) -> str:
    """One document (a non-empty mapping) as the package writes it, ending in a newline."""
    if not isinstance(doc, dict) or not doc:
        raise NotPlain("a document is a non-empty mapping")
    lines: list[str] = []
    _mapping(doc, "", lines)
    return "\n".join(lines) + "\n"


def _mapping(value: dict[str, Any], indent: str, lines: list[str], first: str | None = None) -> None:
    # `first` replaces the indent of the first line: "- " when the mapping is a sequence item
    for i, (key, item) in enumerate(value.items()):
        if not isinstance(key, str) or len(key) > _MAX_KEY or _INDEX.match(key):
            raise NotPlain(f"key {key!r}")
        head = (first if i == 0 and first is not None else indent) + _string(key) + ":"
        if isinstance(item, dict) and item:
            lines.append(head)
            _mapping(item, indent + "  ", lines)
        elif isinstance(item, list) and item:
            lines.append(head)
            _sequence(item, indent + "  ", lines)
        else:
            lines.append(f"{head} {_leaf(item)}")


def _sequence(value: list[Any], indent: str, lines: list[str]) -> None:
    for item in value:
        if isinstance(item, dict) and item:
            _mapping(item, indent + "  ", lines, first=indent + "- ")
        elif isinstance(item, list) and item:
            raise NotPlain("a sequence in a sequence")
        else:
            lines.append(f"{indent}- {_leaf(item)}")


def _leaf(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and -_MAX_INT < value < _MAX_INT:
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    raise NotPlain(f"value {value!r}")


@functools.lru_cache(maxsize=4096)  # a fleet's documents repeat most keys and values
def _string(value: str) -> str:
    if value == "":
        return '""'
    if not _PRINTABLE.match(value) or value.startswith(("---", "...")):
        raise NotPlain(f"string {value!r}")
    if not _NOT_PLAIN.search(value) and not _OTHER_TYPE.match(value):
        return value
    if '"' in value and "'" not in value:
        return f"'{value}'"
    return json.dumps(value)
