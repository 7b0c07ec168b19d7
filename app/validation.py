"""Field-level rules of the configuration, as reusable ``Annotated`` types.

Each checker returns a human sentence describing what is wrong (or None); ``_rule`` turns it into
a pydantic error whose message is exactly that sentence, so ``ConfigError`` can print
``<dotted.field>: <sentence>`` without pydantic's boilerplate or its echo of the input value.
The rules mirror what the Kubernetes API server / S3 would refuse later, so a mistake fails at
synth time on the developer's machine instead of at 2 AM in the cluster.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
from collections.abc import Callable
from decimal import ROUND_UP, Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Self
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from .errors import ConfigError, problems_from_validation_error


class StrictModel(BaseModel):
    """Base of every config section: camelCase keys like the chart, unknown keys are errors."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        # Helm renders `--set cnpg.database=2024` and `database: 2024` as strings; so do we.
        coerce_numbers_to_str=True,
        frozen=True,
    )
    # Dotted path of this section in a values file, so errors from `Cnpg(secret_name="Bad")` in a
    # Python config read `cnpg.secretName: ...` like errors from YAML do.
    _config_path: ClassVar[str] = ""

    # pydantic calls __init__ for nested models too; only the outermost call converts errors,
    # so nested problems surface as one list with full paths instead of the first one alone.
    def __init__(self, /, **data: Any) -> None:
        if _validating.get():
            super().__init__(**data)
            return
        token = _validating.set(True)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(problems_from_validation_error(exc, type(self), prefix=self._config_path)) from None
        finally:
            _validating.reset(token)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Like pydantic's, but raises ConfigError (one line per problem, secrets never echoed)."""
        token = _validating.set(True)
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise ConfigError(problems_from_validation_error(exc, cls, prefix=cls._config_path)) from None
        finally:
            _validating.reset(token)


_validating: contextvars.ContextVar[bool] = contextvars.ContextVar("cnpg_backup_validating", default=False)


def rule(check: Callable[[Any], str | None]) -> AfterValidator:
    def validate(value: Any) -> Any:
        problem = check(value)
        if problem:
            raise PydanticCustomError("cnpg_backup", "{reason}", {"reason": problem})
        return value

    return AfterValidator(validate)


def _scalar_to_str(value: Any) -> Any:
    # YAML turns `prometheus.io/scrape: true` into a bool; Kubernetes wants the string "true".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


# --- Kubernetes names -------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def dns_label_problem(value: str, max_len: int = 63) -> str | None:
    if len(value) > max_len:
        return f"'{value}' is longer than {max_len} characters"
    if not _DNS_LABEL.match(value):
        return (
            f"'{value}' is not a valid DNS-1123 label "
            "(lowercase letters, digits and '-', starting and ending with a letter or digit)"
        )
    return None


def _name_pattern_problem(value: str) -> str | None:
    # Overrides are truncated to 63 like Helm does, so only the character set is checked here.
    if value and not _DNS_LABEL.match(value):
        return (
            f"'{value}' is not a valid DNS-1123 name "
            "(lowercase letters, digits and '-', starting and ending with a letter or digit)"
        )
    return None


def namespace_problem(value: str) -> str | None:
    # Optional: empty means "not given".
    return dns_label_problem(value) if value else None


def dns_subdomain_problem(value: str) -> str | None:
    if not value:
        return None
    if len(value) > 253:
        return f"'{value}' is longer than 253 characters"
    if not _DNS_SUBDOMAIN.match(value):
        return (
            f"'{value}' is not a valid Kubernetes object name (DNS-1123 subdomain: lowercase "
            "letters, digits, '-' and '.', starting and ending with a letter or digit)"
        )
    return None


def qualified_name_problem(value: str) -> str | None:
    """Label/annotation keys and resource names: ``[prefix/]name`` (Kubernetes qualified name)."""
    prefix, sep, name = value.rpartition("/")
    if sep and (not prefix or dns_subdomain_problem(prefix)):
        return f"'{value}' has an invalid prefix (must be a DNS subdomain such as example.com)"
    if not name or len(name) > 63 or not _QUALIFIED_NAME_PART.match(name):
        return (
            f"'{value}' is not a valid Kubernetes key (at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit, optionally prefixed by 'example.com/')"
        )
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            f"'{value}' is not a valid label value (at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit)"
        )
    return None


def secret_key_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > 253 or not _SECRET_KEY.match(value) or value in (".", ".."):
        return f"'{value}' is not a valid Secret key (letters, digits, '-', '_' and '.')"
    return None


def hostname_problem(value: str) -> str | None:
    # cnpg.serviceName becomes PGHOST: a Service name, a FQDN, or an IP address.
    if not value:
        return None
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value.lower()):
        return f"'{value}' is not a valid host name (e.g. appdb-rw or appdb-rw.prod.svc)"
    return None


def postgres_name_problem(value: str) -> str | None:
    if len(value.encode()) > 63:
        return f"'{value}' is longer than 63 bytes (PostgreSQL truncates identifiers)"
    if "\x00" in value:
        return "must not contain NUL characters"
    return None


def url_base_problem(
    value: str, *, example: str, credentials_hint: str, parse_example: str = ""
) -> tuple[SplitResult | None, str | None]:
    """The checks every URL in the config shares: parseable, no credentials (they would land in the
    manifests in plain text), http(s) with a host. Returns the parts, or the problem."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None, f"is not a valid URL (expected e.g. {parse_example or example})"
    if parts.username or parts.password:
        return None, f"must not contain credentials (user:password@){credentials_hint}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, f"'{value}' must be an http:// or https:// URL with a host, e.g. {example}"
    return parts, None


def http_url_problem(value: str) -> str | None:
    """An http(s) URL with a host (a path is allowed, e.g. behind a reverse proxy)."""
    if not value:
        return None
    parts, problem = url_base_problem(
        value,
        example="http://prometheus-pushgateway:9091",
        parse_example="http://prometheus-pushgateway.monitoring.svc:9091",
        credentials_hint=": they would be written into the manifests",
    )
    if parts is None:
        return problem
    if parts.query or parts.fragment or any(c.isspace() for c in value):
        return f"'{value}' must not have a query, fragment or spaces"
    return None


DnsLabel = Annotated[str, rule(dns_label_problem)]
NameOverride = Annotated[str, rule(_name_pattern_problem)]
NamespaceName = Annotated[str, rule(namespace_problem)]
ObjectName = Annotated[str, rule(dns_subdomain_problem)]
QualifiedName = Annotated[str, rule(qualified_name_problem)]
LabelValue = Annotated[str, BeforeValidator(_scalar_to_str), rule(label_value_problem)]
AnnotationValue = Annotated[str, BeforeValidator(_scalar_to_str)]
SecretKey = Annotated[str, rule(secret_key_problem)]
HostName = Annotated[str, rule(hostname_problem)]
PostgresName = Annotated[str, rule(postgres_name_problem)]
HttpUrl = Annotated[str, rule(http_url_problem)]


# An age X25519 recipient: "age1" + 58 Bech32 characters (the data part's alphabet has no b, i, o, 1).
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")


def age_recipient_problem(value: str) -> str | None:
    if value.startswith("AGE-SECRET-KEY-"):
        return (
            "is an age identity (private key), not a recipient: put the private key in a Secret "
            "(encryption.identitySecret) and only its public key (age1…) here"
        )
    if not _AGE_RECIPIENT.fullmatch(value):
        return f"'{value[:16]}…' is not an age public key (age1 followed by 58 characters, from `age-keygen -y`)"
    return None


AgeRecipient = Annotated[str, rule(age_recipient_problem)]


def release_name_problem(value: str) -> str | None:
    # Helm's own limit for release names; keeps object names meaningful after truncation.
    return dns_label_problem(value, max_len=53)


ReleaseName = Annotated[str, rule(release_name_problem)]


# --- Quantities -------------------------------------------------------------------------------

_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(\d+(\.\d*)?|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: str) -> Decimal | None:
    """The numeric value of a Kubernetes quantity, or None when it is not one."""
    match = _QUANTITY.match(value.strip()) if value.strip() == value else None
    if not match:
        return None
    try:
        number = Decimal(match["num"])
    except InvalidOperation:
        return None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    return number.scaleb(int(suffix[1:]))


_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


def canonical_quantity(value: str) -> str:
    """The form the API server stores a quantity in (apimachinery's Quantity.String()):
    `2000m` -> `2`, `0.5Gi` -> `512Mi`, `1024Ki` -> `1Mi`, `1.5` -> `1500m`, `1000k` -> `1M`.

    Manifests must carry this form: `kubectl apply` compares the file with what the server stored,
    so any other spelling reports `configured` and sends a patch on every apply, forever."""
    parsed = parse_quantity(value)
    match = _QUANTITY.match(value)
    if parsed is None or match is None:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    suffix = match["suffix"] or ""
    fmt = "binary" if suffix in _BINARY else "exponent" if suffix[:1] in ("e", "E") else "decimal"
    # Anything finer than 1m is rounded up (away from zero), as the server stores it.
    if parsed.as_tuple().exponent < -3:  # type: ignore[operator]
        parsed = parsed.quantize(Decimal("1e-3"), rounding=ROUND_UP)
    if parsed == 0:
        return "0"
    if fmt == "binary":
        if -1024 < parsed < 1024 or parsed != parsed.to_integral_value():
            fmt = "decimal"  # small or fractional binary amounts are shown in decimal
        else:
            number, power = int(parsed), 0
            while number % 1024 == 0 and power < len(_BINARY_SUFFIX) - 1:
                number, power = number // 1024, power + 1
            return f"{number}{_BINARY_SUFFIX[power]}"
    sign, digits, exponent = parsed.as_tuple()
    mantissa = int("".join(map(str, digits)))
    exponent = int(exponent)
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    while exponent % 3:
        mantissa, exponent = mantissa * 10, exponent - 1
    text = f"{'-' if sign else ''}{mantissa}"
    if fmt == "decimal" and exponent in _DECIMAL_SUFFIX:
        return text + _DECIMAL_SUFFIX[exponent]
    return text if exponent == 0 else f"{text}e{exponent}"


def quantity_problem(value: str) -> str | None:
    parsed = parse_quantity(value)
    if parsed is None:
        return (
            f"'{value}' is not a Kubernetes quantity "
            "(examples: 500m, 2, 256Mi, 1Gi; binary suffixes Ki Mi Gi, decimal k M G, or m for milli)"
        )
    if parsed < 0:
        return f"'{value}' must not be negative"
    return None


Quantity = Annotated[str, BeforeValidator(_scalar_to_str), rule(quantity_problem)]
