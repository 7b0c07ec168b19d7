"""The one exception type the generator raises for anything the user has to fix."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(Exception):
    """A configuration problem the user must fix; ``str()`` is one line per problem.

    Deliberately not a ``ValueError``: pydantic turns ValueErrors raised inside validators into
    its own error type (which echoes input values, secrets included). A ConfigError raised from a
    model validator passes through pydantic untouched, so cross-field checks keep their wording.
    """

    def __init__(self, problems: Iterable[str]):
        self.problems: list[str] = [_printable(p) for p in problems if p] or ["unknown configuration problem"]
        super().__init__("\n".join(f"config error: {p}" for p in self.problems))

    @classmethod
    def one(cls, problem: str) -> ConfigError:
        return cls([problem])


_SECRET_FIELDS = {"accessKeyId", "secretAccessKey", "access_key_id", "secret_access_key"}


def _printable(text: str) -> str:
    """Escape control characters a user's value may carry, so each problem stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in text)


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue  # pydantic's marker for "the dict key itself"; the key is already in the path
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).isprintable() or not str(part):
            # a key with control characters (or none at all) is shown escaped: an error stays one line
            out += f"[{json.dumps(str(part))}]"
        elif "." in str(part) or "/" in str(part):
            out += f'["{part}"]'
        else:
            out += ("." if out else "") + str(part)
    return out


def _alias_loc(root: type[BaseModel] | None, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Field names -> camelCase keys (errors from Python construction use attribute names)."""
    model: Any = root
    out = []
    for part in loc:
        field = None
        if isinstance(model, type) and issubclass(model, BaseModel) and isinstance(part, str):
            field = next(
                ((n, f) for n, f in model.model_fields.items() if part in (n, f.alias, f.validation_alias)),
                None,
            )
        if field is None:
            out.append(part)
            if not isinstance(part, int):
                model = None  # inside a dict: keys are user data, leave them alone
            continue
        name, info = field
        out.append(info.validation_alias or info.alias or name)
        model = _model_of(info.annotation)
    return tuple(out)


def _model_of(annotation: Any) -> Any:
    """list[X] / X | None / X -> X when X is a model, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _allowed_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys a mapping at ``loc`` accepts, for "unknown key" messages (None if unknown)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias, f.validation_alias)),
            None,
        )
        if field is None:
            return None
        model = _model_of(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [str(f.validation_alias or f.alias or n) for n, f in model.model_fields.items()]
    return None


def problems_from_validation_error(
    exc: ValidationError, root: type[BaseModel] | None = None, prefix: str = ""
) -> list[str]:
    """One line per pydantic error: ``<dotted.field>: <what is wrong>``, never echoing secrets."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = _alias_loc(root, tuple(err["loc"]))
        path = _format_loc(((prefix,) if prefix else ()) + loc) or "(top level)"
        secret = any(str(p) in _SECRET_FIELDS for p in loc)
        kind, msg = err["type"], err["msg"]
        if kind == "cnpg_backup":
            text = msg
        elif kind == "extra_forbidden":
            allowed = _allowed_keys(root, loc[:-1]) if root is not None else None
            text = "unknown key"
            if allowed:
                close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                text += f" (did you mean '{close[0]}'?)" if close else ""
                text += f"; allowed keys here: {', '.join(allowed)}"
        elif kind == "missing":
            text = "required"
        else:
            text = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            value = err.get("input")
            if not secret and isinstance(value, str | int | float | bool) and kind != "value_error":
                text += f" (got {value!r})"
        if secret:
            # Belt and braces: a secret must not leak even through a pydantic-built message.
            text = text.replace(str(err.get("input")), "***") if err.get("input") else text
        problems.append(f"{path}: {text}")
    return problems
