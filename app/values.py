"""Helm-compatible values loading: ``-f`` files merged left to right, then ``--set`` overrides.

The semantics follow Helm 3 so a chart user's files and command lines keep working:
maps merge deeply, anything else (lists, scalars) is replaced by the later file; ``--set`` writes
into the merged values (so ``databases[0].schedule=...`` edits an item from a file); ``null``
resets a key to its default (under ``resources`` it removes that request/limit, as in Helm).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from .config import Config
from .errors import ConfigError

Values = dict[str, Any]

_MAX_LIST_INDEX = 1000  # Helm caps indexes too; a typo like a[99999999] must not allocate a huge list


# --- YAML files -------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML silently keeps the last one, which turns a
    copy-paste slip (two `schedule:` lines) into a silently different backup schedule."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _key(loader: _UniqueKeyLoader, key_node: yaml.Node) -> str:
    key = loader.construct_object(key_node, deep=True)
    # Helm reads values through JSON, so scalar keys become strings there: `1:` is "1", `on:` (YAML
    # 1.1's true) is "true". A null or a collection as a key is a slip, not a setting.
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return str(key)
    if not isinstance(key, str):
        raise yaml.constructor.ConstructorError(None, None, "keys must be strings (quote it)", key_node.start_mark)
    return key


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[str, Any]:
    # Duplicates are looked for among the mapping's own keys only: a key that overrides one brought
    # in by a merge key (`<<: *anchor`) is what merge keys are for.
    seen: set[str] = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = _key(loader, key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)  # merged pairs first, then the mapping's own: the later one wins
    return {_key(loader, k): loader.construct_object(v, deep=deep) for k, v in node.value}


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_values_file(path: str | Path) -> Values:
    """Parse one values file. Errors name the file and line but never quote the line itself
    (it may hold a credential)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError.one(f"{path}: values file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.one(f"{path}: cannot read values file ({exc.__class__.__name__})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        raise ConfigError.one(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "invalid YAML"
        raise ConfigError.one(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError.one(f"{path}: the top level must be a mapping of keys (like a Helm values.yaml)")
    return data


def merge_values(base: Values, override: Values) -> Values:
    """Helm's merge of two values files: maps merge recursively, everything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_values(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# --- --set ------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"^(?P<name>[^\[\]]+)(?P<indexes>(\[\d+\])*)$")


def _split_unescaped(text: str, sep: str, *, respect_braces: bool = False) -> list[str]:
    """Split on ``sep`` except after a backslash (and, optionally, inside ``{...}``)."""
    parts, current, depth, i = [], "", 0, 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if respect_braces and char == "{":
            depth += 1
        elif respect_braces and char == "}":
            depth = max(depth - 1, 0)
        if char == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _typed(value: str, as_string: bool) -> Any:
    """Helm's typedVal: true/false/null (any case) and integers without a leading zero are typed."""
    if as_string:
        return value
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if value == "0" or (value and value[0] != "0" and re.fullmatch(r"[+-]?\d+", value)):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    return value


def _parse_key(key: str, option: str) -> list[str | int]:
    raw = key.strip()
    if not raw:
        raise ConfigError.one(
            f"{option} '=...': missing key before '=' (expected KEY=VALUE, e.g. backup.schedule=0 3 * * *)"
        )
    path: list[str | int] = []
    for segment in _split_unescaped(raw, "."):
        match = _SEGMENT.match(segment)
        if not segment or not match:
            raise ConfigError.one(
                f"{option} '{raw}': malformed key (empty or invalid segment; expected dotted names "
                "like backup.schedule or databases[0].name, escape a literal dot as '\\.')"
            )
        path.append(_unescape(match["name"]))
        for index in re.findall(r"\[(\d+)\]", match["indexes"]):
            if int(index) > _MAX_LIST_INDEX:
                raise ConfigError.one(f"{option} '{raw}': list index {index} is too large")
            path.append(int(index))
    return path


def _assign(values: Values, path: list[str | int], value: Any, option: str, key: str) -> None:
    """Write `value` at `path`, creating maps/lists on the way (Helm pads lists with null)."""
    node: Any = values
    for position, step in enumerate(path):
        if isinstance(step, int):
            if not isinstance(node, list):
                raise ConfigError.one(f"{option} '{key}': the value there is not a list")
            while len(node) <= step:
                node.append(None)
        elif not isinstance(node, dict):
            raise ConfigError.one(f"{option} '{key}': the value there is not a mapping")
        if position == len(path) - 1:
            node[step] = value
            return
        following = path[position + 1]
        current = node[step] if isinstance(step, int) else node.get(step)
        if not isinstance(current, dict | list):
            node[step] = [] if isinstance(following, int) else {}
        node = node[step]


def apply_set(values: Values, expression: str, *, as_string: bool = False) -> Values:
    """Apply one ``--set``/``--set-string`` argument (``a.b=c,d[0]=e,f={x,y}``) to ``values``."""
    option = "--set-string" if as_string else "--set"
    result = copy.deepcopy(values)
    pairs = _split_unescaped(expression, ",", respect_braces=True)
    for number, pair in enumerate(pairs, 1):
        key, eq, raw_value = pair.partition("=")
        if not eq:
            # Not quoted: after `secretAccessKey=abc,def` the text without '=' is the tail of a
            # value that held a comma, i.e. part of a credential.
            where = f"pair {number} of {len(pairs)}" if len(pairs) > 1 else "the argument"
            raise ConfigError.one(
                f"{option}: {where} has no '=' (expected KEY=VALUE, e.g. backup.schedule=0 3 * * *; "
                "write a comma inside a value as '\\,')"
            )
        path = _parse_key(key, option)
        if raw_value.startswith("{") and raw_value.endswith("}") and not as_string:
            inner = raw_value[1:-1]
            value: Any = [_typed(_unescape(v), False) for v in _split_unescaped(inner, ",")] if inner else []
        else:
            value = _typed(_unescape(raw_value), as_string)
        _assign(result, path, value, option, key.strip())
    return result


# --- --set-json, --set-file ------------------------------------------------------------------


def apply_set_json(values: Values, expression: str) -> Values:
    """Apply one ``--set-json`` argument (``a.b={"x":1},c=[1,2]``): each value is one JSON
    document, and a comma after it starts the next pair (Helm's ParseJSON)."""
    option = "--set-json"
    result = copy.deepcopy(values)
    decoder = json.JSONDecoder()
    rest, number = expression, 0
    while rest:
        number += 1
        key, *after = _split_unescaped(rest, "=")
        if not after:
            raise ConfigError.one(
                f"{option}: pair {number} has no '=' (expected KEY=JSON, e.g. 'backup.imagePullSecrets=[]')"
            )
        tail = rest[len(key) + 1 :]
        path = _parse_key(key, option)
        try:
            value, end = decoder.raw_decode(tail)
        except json.JSONDecodeError as exc:
            # The position, not the text: the JSON may hold a credential.
            raise ConfigError.one(
                f"{option} '{key.strip()}': invalid JSON at character {exc.pos + 1}: {exc.msg}"
            ) from None
        _assign(result, path, value, option, key.strip())
        rest = tail[end:]
        if rest and not rest.startswith(","):
            raise ConfigError.one(
                f"{option} '{key.strip()}': unexpected text after the JSON value (separate pairs with ',')"
            )
        rest = rest[1:]
    return result


def apply_set_file(values: Values, expression: str) -> Values:
    """Apply one ``--set-file`` argument (``a.b=path,c=path``): each value becomes the content of
    the file, verbatim, as a string (Helm's --set-file). The content is never echoed in errors."""
    option = "--set-file"
    result = copy.deepcopy(values)
    pairs = _split_unescaped(expression, ",")
    for number, pair in enumerate(pairs, 1):
        key, eq, raw_path = pair.partition("=")
        if not eq or not raw_path.strip():
            raise ConfigError.one(
                f"{option}: pair {number} has no '=PATH' (expected KEY=PATH, e.g. s3.secretAccessKey=./key)"
            )
        path = _parse_key(key, option)
        file = Path(_unescape(raw_path))  # relative to the working directory, as in Helm
        try:
            content = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError.one(f"{option} '{key.strip()}': file {file} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError.one(f"{option} '{key.strip()}': cannot read {file} ({exc.__class__.__name__})") from None
        _assign(result, path, content, option, key.strip())
    return result


# --- Putting it together ----------------------------------------------------------------------


def _drop_nulls(value: Any, keep: bool = False) -> Any:
    """Helm deletes keys set to null, so the default applies. Under `resources` a null must
    survive: there it removes a default request/limit (see Resources)."""
    if isinstance(value, dict):
        return {
            k: _drop_nulls(v, keep or k == "resources")
            for k, v in value.items()
            if v is not None or keep or k == "resources"
        }
    if isinstance(value, list):
        return [_drop_nulls(v, keep) for v in value]
    return value


def merge_all(
    files: Sequence[str | Path] = (),
    sets: Iterable[str] = (),
    set_strings: Iterable[str] = (),
    base: Values | None = None,
    set_jsons: Iterable[str] = (),
    set_files: Iterable[str] = (),
) -> Values:
    """Values from files (left to right), then --set-json, --set, --set-string, --set-file
    (Helm's order: a later kind wins over an earlier one for the same key)."""
    values: Values = copy.deepcopy(base) if base else {}
    for path in files:
        values = merge_values(values, read_values_file(path))
    for expression in set_jsons:
        values = apply_set_json(values, expression)
    for expression in sets:
        values = apply_set(values, expression)
    for expression in set_strings:
        values = apply_set(values, expression, as_string=True)
    for expression in set_files:
        values = apply_set_file(values, expression)
    return cast(Values, _drop_nulls(values))


def load_values(
    path: str | Path | Sequence[str | Path] | None = None,
    overrides: Iterable[str] = (),
    set_strings: Iterable[str] = (),
) -> Config:
    """Load a chart-shaped values file (or several) plus ``--set`` overrides into a Config.

    Raises ConfigError (one line per problem) for unreadable/invalid YAML, malformed overrides,
    unknown keys and invalid values.
    """
    if path is None:
        files: list[str | Path] = []
    elif isinstance(path, str | Path):
        files = [path]
    else:
        files = list(path)
    return config_from_values(merge_all(files, overrides, set_strings))


def config_from_values(values: Values) -> Config:
    return Config.model_validate(values)
