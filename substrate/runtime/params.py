"""Parameters typed from the catalogued signature, and their digest (docs/runtime.md).

Every value is checked against the PostgreSQL type its target function declares and turned
into one canonical form: a JSON value (what the digest covers) and the text PostgreSQL casts
to the type (what the executor binds). Values are never interpolated into SQL.

* smallint, integer, bigint: an int or a decimal string within the type's range -> the int;
* numeric: an int, Decimal, finite float or decimal string -> a string without exponent;
* boolean: a bool or true/false/t/f/yes/no/on/off/1/0 -> true or false;
* uuid: a uuid.UUID or any spelling ``uuid.UUID`` reads -> lowercase 8-4-4-4-12;
* text: a str without NUL -> itself;
* jsonb: JSON text (a str), or a dict, list, number or bool -> the JSON value (bound as
  compact JSON with sorted keys); numbers in JSON text keep every digit (as PostgreSQL's
  jsonb does), JSON ``null`` is the jsonb value null (not SQL NULL), and a value nests at most
  MAX_JSON_DEPTH deep;
* T[] for T above: a list or tuple, or a JSON array text (NULL elements allowed) -> the list
  of canonical elements (bound as an array literal, every element quoted).

None is SQL NULL for any type. ``params_digest`` is the md5 of the canonical JSON of
``{"command": ..., "params": {name: canonical value}}`` with sorted keys: 32 lowercase hex
characters, the same for the same call whichever spelling the caller used. A jsonb null is
written there as JSON null too, and the body then also lists, under ``"json_null"``, where
such nulls stand (a parameter's name, or name[index] in an array), so SQL NULL and the jsonb
null never share a digest.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from substrate.runtime.errors import ParameterError

INTEGER_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
SCALAR_TYPES = frozenset({*INTEGER_RANGES, "numeric", "boolean", "uuid", "text", "jsonb"})
BOOLEANS = {"true": True, "t": True, "yes": True, "on": True, "1": True,
            "false": False, "f": False, "no": False, "off": False, "0": False}
# A sign, any leading zeros, then at most 20 digits: longer is out of every integer type's
# range, and is never handed to int() (which refuses 4,300 digits and more with ValueError).
_INTEGER_TEXT = re.compile(r"([+-]?)0*([0-9]{1,20})")
_NUMERIC_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
# PostgreSQL's numeric: at most 131,072 digits before the point and 16,383 after it.
NUMERIC_MAX_EXPONENT = 131_071
NUMERIC_MIN_EXPONENT = -16_383
MAX_JSON_DEPTH = 100


class JsonNull:
    """The jsonb value null, as a parameter's value or an array element (None is SQL NULL)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "JSON_NULL"


JSON_NULL = JsonNull()


def is_supported(pg_type: str) -> bool:
    """A type the runtime can bind: one of SCALAR_TYPES, or a one-dimensional array of one."""
    return element_type(pg_type) in SCALAR_TYPES


def element_type(pg_type: str) -> str:
    return pg_type[:-2] if pg_type.endswith("[]") else pg_type


@dataclass(frozen=True)
class TypedParam:
    """One parameter: its name, catalogued type and canonical value."""

    name: str
    pg_type: str
    value: object  # the canonical JSON value (None for SQL NULL)

    @property
    def text(self) -> str | None:
        """The text the executor binds; the statement casts it to ``pg_type``."""
        return sql_text(self.pg_type, self.value)


class IllTyped(ValueError):
    """A value that does not fit its type; the message describes the type, never the value."""


def canonical(pg_type: str, value: object) -> object:
    """The canonical JSON value of ``value`` as ``pg_type``; IllTyped when it does not fit."""
    if value is None:
        return None
    if pg_type.endswith("[]"):
        element = element_type(pg_type)
        if isinstance(value, str):
            value = _json(value, "a JSON array")
        if not isinstance(value, (list, tuple)):
            raise IllTyped(f"expected a list of {element} (a JSON array on the command line)")
        if element != "jsonb" and any(isinstance(item, (list, tuple)) for item in value):
            raise IllTyped(f"expected a one-dimensional list of {element}")
        return [canonical(element, item) for item in value]
    return _SCALARS[pg_type](pg_type, value)


def _integer(pg_type, value):
    found = _INTEGER_TEXT.fullmatch(value) if isinstance(value, str) else None
    if found:
        value = int(found.group(1) + found.group(2))
    low, high = INTEGER_RANGES[pg_type]
    if type(value) is not int or not low <= value <= high:
        raise IllTyped(f"expected {pg_type}: a whole number in {low}..{high}")
    return value


def _numeric(pg_type, value):
    if isinstance(value, float) and math.isfinite(value):
        value = repr(value)
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        value = Decimal(value)
    if type(value) is int:
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite():
        raise IllTyped("expected numeric: a finite decimal number")
    if not _numeric_range(value):
        raise IllTyped("expected numeric: at most 131072 digits before the decimal point and "
                       "16383 after it")
    return _decimal_text(value)


def _numeric_range(value: Decimal) -> bool:
    """Whether a finite Decimal fits PostgreSQL's numeric (and so its jsonb numbers)."""
    return value.is_zero() or (NUMERIC_MIN_EXPONENT <= value.adjusted() <= NUMERIC_MAX_EXPONENT
                               and value.as_tuple().exponent >= NUMERIC_MIN_EXPONENT)


def _decimal_text(value: Decimal) -> str:
    """A Decimal as PostgreSQL writes a numeric: no exponent, no negative zero."""
    return format(value.copy_abs() if value.is_zero() else value, "f")


def _boolean(pg_type, value):
    if isinstance(value, str) and value.strip().lower() in BOOLEANS:
        return BOOLEANS[value.strip().lower()]
    if isinstance(value, bool):
        return value
    raise IllTyped("expected boolean: true or false")


def _uuid(pg_type, value):
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise IllTyped("expected uuid: 32 hexadecimal digits, e.g. 8-4-4-4-12")


def _text(pg_type, value):
    if not isinstance(value, str):
        raise IllTyped("expected text: a string")
    _check_string(value, "text")
    return value


def _jsonb(pg_type, value):
    if isinstance(value, str):
        value = _json(value, "JSON")
    _check_json(value, 0)
    return JSON_NULL if value is None else value


_SCALARS = {**dict.fromkeys(INTEGER_RANGES, _integer), "numeric": _numeric,
            "boolean": _boolean, "uuid": _uuid, "text": _text, "jsonb": _jsonb}


def _check_string(value: str, what: str) -> None:
    if "\x00" in value:
        raise IllTyped(f"expected {what}: PostgreSQL text cannot hold a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise IllTyped(f"expected {what}: not valid Unicode (a lone surrogate)") from None


def _json(text: str, what: str) -> object:
    """JSON text parsed with every number exact: a number with a fraction or an exponent is a
    Decimal, so no digit is lost on the way to PostgreSQL (whose jsonb keeps them all)."""
    def no_constant(name):
        raise ValueError(name)

    try:
        return json.loads(text, parse_constant=no_constant, parse_float=Decimal)
    except (ValueError, RecursionError):  # ill-formed, a huge integer, or nested too deep
        raise IllTyped(f"expected {what}") from None


def _check_json(value: object, depth: int) -> None:
    if depth >= MAX_JSON_DEPTH:  # depth 0 is the value itself
        raise IllTyped(f"expected jsonb: nested at most {MAX_JSON_DEPTH} deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise IllTyped("expected jsonb: object keys must be strings")
            _check_string(key, "jsonb")
            _check_json(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, str):
        _check_string(value, "jsonb")
    elif (isinstance(value, float) and not math.isfinite(value)
          or isinstance(value, Decimal) and not value.is_finite()):
        raise IllTyped("expected jsonb: NaN and Infinity are not JSON")
    elif isinstance(value, Decimal) and not _numeric_range(value):
        raise IllTyped("expected jsonb: a number out of PostgreSQL's numeric range")
    elif value is not None and value is not JSON_NULL and not isinstance(
            value, (bool, int, float, Decimal)):
        raise IllTyped("expected jsonb: JSON text or a dict, list, string, number or boolean")


def _dumps(value: object) -> str:
    """Compact JSON with sorted keys; a Decimal is written exactly (no exponent, as
    PostgreSQL writes a jsonb number) and the jsonb null as null."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_dumps(key)}:{_dumps(value[key])}"
                              for key in sorted(value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_dumps(item) for item in value) + "]"
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if value is JSON_NULL:
        return "null"
    return json.dumps(value, ensure_ascii=False)


def sql_text(pg_type: str, value: object) -> str | None:
    """The text form PostgreSQL casts to ``pg_type`` (None for NULL)."""
    if value is None:
        return None
    if pg_type.endswith("[]"):
        element = element_type(pg_type)
        items = ("NULL" if item is None else _array_item(sql_text(element, item))
                 for item in value)
        return "{" + ",".join(items) + "}"
    if pg_type == "jsonb":
        return _dumps(value)
    if pg_type == "boolean":
        return "true" if value else "false"
    return str(value)


def _array_item(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def type_params(command: str, names: Sequence[str], types: Sequence[str],
                given: Mapping[str, object] | None) -> tuple[TypedParam, ...]:
    """The parameters of ``command`` typed from its signature, in the signature's order."""
    given = dict(given or {})
    missing = [name for name in names if name not in given]
    unknown = [name for name in given if name not in names]
    problems, ill_typed, typed = [], [], []
    for name, pg_type in zip(names, types, strict=True):
        if name not in given:
            continue
        try:
            typed.append(TypedParam(name, pg_type, canonical(pg_type, given[name])))
        except IllTyped as error:
            ill_typed.append(name)
            problems.append(f"{name}: {error}")
    if missing:
        problems.insert(0, f"missing parameter(s): {', '.join(missing)}")
    if unknown:
        expects = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True)) or "none"
        problems.insert(0, f"{len(unknown)} unknown parameter(s) (expects: {expects})")
    if problems:
        raise ParameterError(f"{command}: " + "; ".join(problems),
                             missing=missing, ill_typed=ill_typed, unknown=len(unknown))
    return tuple(typed)


def params_digest(command: str, params: Sequence[TypedParam]) -> str:
    """md5 of the canonical JSON of the command and its typed parameters."""
    body: dict = {"command": command, "params": {p.name: p.value for p in params}}
    nulls = [p.name for p in params if p.value is JSON_NULL]
    nulls += [f"{p.name}[{index}]" for p in params if isinstance(p.value, list)
              for index, item in enumerate(p.value) if item is JSON_NULL]
    if nulls:
        body["json_null"] = sorted(nulls)
    return hashlib.md5(_dumps(body).encode("utf-8")).hexdigest()


def names_digest(command: str, names) -> str:
    """The digest of a call whose values could not be typed: the command and the parameter
    names given, sorted (values that cannot be canonicalised are not digested)."""
    body = {"command": command, "param_names": sorted(str(name) for name in names),
            "untyped": True}
    # backslashreplace: a name may hold a lone surrogate (bytes a shell gave that are not
    # UTF-8); the digest still comes out, and the call is refused for that name.
    return hashlib.md5(_dumps(body).encode("utf-8", "backslashreplace")).hexdigest()
