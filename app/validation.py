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
import zoneinfo
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from app.errors import ConfigError, problems_from_validation_error


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
            raise ConfigError(
                problems_from_validation_error(exc, type(self), prefix=self._config_path)
            ) from None
        finally:
            _validating.reset(token)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Like pydantic's, but raises ConfigError (one line per problem, secrets never echoed)."""
        token = _validating.set(True)
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise ConfigError(problems_from_validation_error(exc, cls, prefix=cls._config_path)) from None
        finally:
            _validating.reset(token)


_validating: contextvars.ContextVar[bool] = contextvars.ContextVar("cnpg_backup_validating", default=False)


def _rule(check: Callable[[Any], str | None]) -> AfterValidator:
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


DnsLabel = Annotated[str, _rule(dns_label_problem)]
NameOverride = Annotated[str, _rule(_name_pattern_problem)]
ObjectName = Annotated[str, _rule(dns_subdomain_problem)]
QualifiedName = Annotated[str, _rule(qualified_name_problem)]
LabelValue = Annotated[str, BeforeValidator(_scalar_to_str), _rule(label_value_problem)]
AnnotationValue = Annotated[str, BeforeValidator(_scalar_to_str)]
SecretKey = Annotated[str, _rule(secret_key_problem)]
HostName = Annotated[str, _rule(hostname_problem)]
PostgresName = Annotated[str, _rule(postgres_name_problem)]


def release_name_problem(value: str) -> str | None:
    # Helm's own limit for release names; keeps object names meaningful after truncation.
    return dns_label_problem(value, max_len=53)


ReleaseName = Annotated[str, _rule(release_name_problem)]


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


Quantity = Annotated[str, BeforeValidator(_scalar_to_str), _rule(quantity_problem)]


# --- Cron -------------------------------------------------------------------------------------

CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_CRON_SHAPE = "expected 5 fields: minute hour day-of-month month day-of-week, or @daily/@hourly/..."


def _cron_value(text: str, lo: int, hi: int, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"'{text}' is not a number" + (" or a name" if names else ""))
    number = int(text)
    if not lo <= number <= hi:
        raise ValueError(f"{number} is out of range {lo}-{hi}")
    return number


def _cron_field_problem(text: str, lo: int, hi: int, names: dict[str, int], wildcard_q: bool) -> str | None:
    for item in text.split(","):
        base, slash, step = item.partition("/")
        try:
            if slash:
                if not step.isdigit() or int(step) < 1:
                    raise ValueError(f"step '{step}' must be a positive number")
            if base == "*" or (base == "?" and wildcard_q):
                continue
            start_text, dash, end_text = base.partition("-")
            start = _cron_value(start_text, lo, hi, names)
            if dash:
                end = _cron_value(end_text, lo, hi, names)
                if start > end:
                    raise ValueError(f"range {base} runs backwards")
        except ValueError as exc:
            return f"{exc} in '{item}'" if item != text else str(exc)
    return None


def cron_problem(value: str) -> str | None:
    expr = value.strip()
    if expr.startswith(("TZ=", "CRON_TZ=")):
        return f"'{value}': Kubernetes does not accept a time zone in the schedule; set backup.timeZone instead"
    if expr.startswith("@"):
        if expr in CRON_MACROS:
            return None
        return f"not a valid cron expression '{value}' (unknown macro; use one of {', '.join(CRON_MACROS)})"
    fields = expr.split()
    if len(fields) != 5:
        return f"not a valid cron expression '{value}' ({_CRON_SHAPE})"
    for field_text, (label, lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field_problem(field_text, lo, hi, names, wildcard_q=label.startswith("day"))
        if problem:
            return f"not a valid cron expression '{value}' ({label}: {problem})"
    return None


Cron = Annotated[str, _rule(cron_problem)]


def time_zone_problem(value: str | None) -> str | None:
    if value is None:
        return None
    if value == "Local" or not re.match(r"^[A-Za-z0-9_+\-/]+$", value):
        return f"'{value}' is not an IANA time zone name (e.g. Europe/Berlin, UTC)"
    zones = _available_zones()
    # Without a tz database on this machine we can only check the shape; the API server checks the rest.
    if zones and value not in zones:
        return f"'{value}' is not a known IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"
    return None


@lru_cache(maxsize=1)
def _available_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


TimeZone = Annotated[str, _rule(time_zone_problem)]


# --- S3 ---------------------------------------------------------------------------------------

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")


def bucket_problem(value: str) -> str | None:
    if not value:
        return None  # "required" is a cross-field rule: only when something runs
    hint = " (S3 bucket names: 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)"
    if value.startswith("s3://"):
        return f"'{value}' is a URL; give only the bucket name, e.g. '{value[5:].split('/')[0]}'"
    if not 3 <= len(value) <= 63:
        return f"'{value}' must be 3 to 63 characters long" + hint
    if not _BUCKET.match(value):
        return f"'{value}' is not a valid bucket name" + hint
    if ".." in value:
        return f"'{value}' must not contain two adjacent periods"
    try:
        ipaddress.IPv4Address(value)
        return f"'{value}' must not be formatted as an IP address"
    except ValueError:
        pass
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if value.startswith(prefix):
            return f"'{value}' must not start with '{prefix}' (reserved by S3)"
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if value.endswith(suffix):
            return f"'{value}' must not end with '{suffix}' (reserved by S3)"
    return None


def prefix_problem(value: str) -> str | None:
    if value.startswith("/"):
        return f"'{value}' must not start with '/' (S3 keys are relative to the bucket: use '{value.lstrip('/')}')"
    if "//" in value:
        return f"'{value}' must not contain '//' (it would create an empty path segment)"
    if ".." in value:
        return f"'{value}' must not contain '..'"
    if any(ord(c) < 32 for c in value):
        return "must not contain control characters"
    return None


def _strip_trailing_slash(value: Any) -> Any:
    # `appdb/` and `appdb` mean the same folder; the worker adds the separator itself.
    return value.rstrip("/") if isinstance(value, str) and value.strip("/") else value


S3Prefix = Annotated[str, BeforeValidator(_strip_trailing_slash), _rule(prefix_problem)]
S3Bucket = Annotated[str, _rule(bucket_problem)]


def endpoint_problem(value: str) -> str | None:
    if not value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "is not a valid URL (expected e.g. http://minio.minio.svc.cluster.local:9000)"
    if parts.username or parts.password:
        # Never echo the URL: it contains credentials.
        return "must not contain credentials (user:password@); put them in the S3 Secret"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"'{value}' must be an http:// or https:// URL with a host, e.g. https://s3.eu-central-1.amazonaws.com"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return (
            f"'{value}' must not have a path, query or fragment; the bucket is s3.bucket and the "
            "folder is s3.prefix"
        )
    return None


S3Endpoint = Annotated[str, _rule(endpoint_problem)]


def region_problem(value: str) -> str | None:
    if not re.match(r"^[A-Za-z0-9-]+$", value):
        return f"'{value}' is not a valid region name (e.g. us-east-1)"
    return None


def storage_class_problem(value: str) -> str | None:
    if value and not re.match(r"^[A-Z0-9_]+$", value):
        return f"'{value}' is not an S3 storage class (e.g. STANDARD, STANDARD_IA, GLACIER_IR)"
    return None


S3Region = Annotated[str, _rule(region_problem)]
S3StorageClass = Annotated[str, _rule(storage_class_problem)]


def restore_object_problem(value: str) -> str | None:
    if not value:
        return None
    if value.startswith("s3://"):
        without_scheme = value[5:]
        key = without_scheme.partition("/")[2]
        return (
            f"'{value}' is a URL; give the object key without 's3://' and the bucket name "
            f"(the bucket is s3.bucket), e.g. '{key or 'appdb/appdb_2024-01-21_02-00-00.sql.gz'}'"
        )
    if value.startswith("/"):
        return f"'{value}' must not start with '/' (S3 keys are relative to the bucket: use '{value.lstrip('/')}')"
    if value.endswith("/"):
        return f"'{value}' names a folder; give a backup file name, a full key, or 'latest'"
    if any(ord(c) < 32 for c in value) or len(value.encode()) > 1024:
        return "is not a valid S3 object key (control characters or longer than 1024 bytes)"
    return None


RestoreObject = Annotated[str, _rule(restore_object_problem)]
