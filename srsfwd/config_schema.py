"""The building blocks of the configuration file's declarative schema.

Each table's schema is a ``ConfigTable`` next to the feature that reads it (``[srs]`` in
``srsfwd.srs_settings``, ``[dkim]``/``[dns]`` in ``srsfwd.dkim.settings``, ``[serve]`` in
``srsfwd.servers.settings``, ``[decide]``/``[pools.*]`` in ``srsfwd.pool_settings``,
``[limits]`` in ``srsfwd.limits``, ``[forward]`` in ``srsfwd.forward_settings``);
``srsfwd.config_file`` puts them together. This module holds their common base, the
value types they share, and the one-line errors.

msgspec does the checking (strict: a bool is not a number, NaN and infinities are not
numbers in range, unknown keys are refused); a table's ``__post_init__`` checks what
types cannot say (an IP address, an endpoint) and raises ``ValueError("key: why")``.
A key that is absent is ``None``: its default lives in the feature's settings.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import msgspec

from srsfwd.errors import ConfigError
from srsfwd.logtext import one_line
from srsfwd.stores import check_location

T = TypeVar("T", bound="ConfigTable")


class ConfigTable(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The base of every table's schema: unknown keys are refused; None means absent.

    Subclasses say ``frozen=True`` again (msgspec inherits it; mypy needs to see it).
    """


#: Seconds: above 0, finite, at most a week and a bit.
Seconds = Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]
#: A count or a limit: 0 or more, at most a billion.
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
#: A count of at least one.
PositiveCount = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)]
#: A TCP or UDP port.
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
#: One string or a list of strings.
Strings = str | list[str]


def check_store_location(key: str, where: str | None) -> None:
    """Refuse a URL that names no store we have (it would become an SQLite file's name).

    Raises:
        ValueError: a URL whose scheme is not redis, rediss or unix.
    """
    if where:
        try:
            check_location(where)
        except ConfigError as exc:
            raise ValueError(f"{key}: {exc}") from None


def check_authserv_id(key: str, value: str | None) -> None:
    """Refuse an authserv-id that cannot go in an Authentication-Results header.

    Raises:
        ValueError: empty, not ASCII, or with a space or ``;``.
    """
    if value is not None and (
        not value or not value.isascii() or any(c in value for c in " ;\t\r\n")
    ):
        raise ValueError(f"{key}: {value!r} cannot go in a header")


def as_list(value: str | list[str] | None) -> list[str]:
    """A ``Strings`` value as a list (absent: empty)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def given(table: ConfigTable) -> dict[str, Any]:
    """The keys the file sets in ``table`` (absent ones are None), by field name."""
    return {
        name: value
        for name in table.__struct_fields__
        if (value := getattr(table, name)) is not None
    }


# The pool names' other spellings.
POOL_NAMES = {"high-risk": "high_risk", "highrisk": "high_risk"}
_TABLES_WITH_FREE_KEYS = {("dkim", "domains")}


def convert_file(data: Mapping[str, Any], schema: type[T]) -> T:
    """``data`` (a parsed TOML file) checked against ``schema``, typed.

    Raises:
        ConfigError: one line naming the table and key: an unknown key or table (with
            the nearest known name), a wrong type, NaN or infinity, a number out of range.
    """
    try:
        return msgspec.convert(normalise(data), schema, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(one_line(_describe(str(exc), data, schema))) from None
    except RecursionError:
        raise ConfigError("the configuration is nested too deeply") from None


def normalise(value: Any, path: tuple[str, ...] = ()) -> Any:
    """Keys with ``_`` for ``-`` and postsrsd's [srs] names as ours, as the schema has them."""
    if not isinstance(value, dict) or path in _TABLES_WITH_FREE_KEYS:
        return value
    from srsfwd.srs_settings import SRS_KEY_ALIASES

    out: dict[str, Any] = {}
    for raw, item in value.items():
        key = raw.replace("-", "_")
        if path == ("srs",):
            key = SRS_KEY_ALIASES.get(key, key)
        elif path == ("pools",):
            key = POOL_NAMES.get(raw, key)
        out[key] = normalise(item, (*path, key))
    return out


# msgspec quotes a key in backticks without escaping it, so a key may itself hold
# backticks or line breaks: match the whole message, not up to the next backtick.
_WHERE = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?\Z", re.DOTALL)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<key>.*)`", re.DOTALL)
_EXPECTED = re.compile(r"Expected `(?P<kind>[^`]*)`(?:, got `[^`]*`)?(?P<rest>.*)")
_OWN_CHECK = re.compile(r"(?P<key>[a-z_]+): (?P<why>.*)", re.DOTALL)
_KINDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
}


def _describe(error: str, data: Mapping[str, Any], schema: type[ConfigTable]) -> str:
    """msgspec's ``error`` as one line naming the table and key as the file writes them."""
    match = _WHERE.match(error)
    message, where = (match["message"], match["path"] or "") if match else (error, "")
    path = [p for p in re.split(r"\.|\[", where) if p]
    tables, value = _walk(data, path, schema)
    unknown = _UNKNOWN.fullmatch(message)
    if unknown:
        return _unknown_name(unknown["key"], tables, value, _known_keys(schema, path))
    own = _OWN_CHECK.match(message)
    if own and isinstance(value, dict):
        # A table's own check (its __post_init__): "key: why", the key by its field name.
        return f"[{_table_name(tables)}] {_original_key(value, own['key'])}: {own['why']}"
    key = _key_at(data, schema, path, tables)
    expected = _EXPECTED.fullmatch(message)
    if expected:
        kinds = [k for k in expected["kind"].split(" | ") if k != "null"]
        if kinds == ["object"] and key and not isinstance(value, dict):
            return f"[{_table_name([*tables, key])}] must be a table, got {_toml(value)}"
        rest = expected["rest"].strip()
        message = f"expected {' or '.join(_KINDS.get(k, k) for k in kinds)} {rest}".rstrip()
    elif message.startswith("Invalid enum value") and (choices := _choices(schema, path)):
        message = "must be " + " or ".join(f'"{c}"' for c in choices)
    got = f", got {_toml(value)}" if value is not _MISSING and not isinstance(value, dict) else ""
    head = f"[{_table_name(tables)}] " if tables else ""
    return f"{head}{key}: {message}{got}" if key else f"{head}{message}"


def _unknown_name(key: str, tables: list[str], value: Any, known: list[str]) -> str:
    """An unknown key or table, with the nearest known name."""
    raw = _original_key(value, key)
    if "-" in raw:
        known = [k.replace("_", "-") for k in known]
    near = difflib.get_close_matches(raw, known, n=1)
    if tables:
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"[{_table_name(tables)}] has no setting {raw!r}{hint}"
    if isinstance(value, dict) and isinstance(value.get(raw), dict):
        hint = f" (did you mean [{near[0]}]?)" if near else ""
        return f"unknown table [{raw}]{hint}"
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown setting {raw!r}{hint}"


def _key_at(
    data: Mapping[str, Any], schema: type[ConfigTable], path: list[str], tables: list[str]
) -> str:
    """The key (as the file writes it) after ``tables`` on ``path``; "" when none."""
    if len(path) <= len(tables):
        return ""
    key = path[len(tables)]
    parent = _walk(data, path[: len(tables)], schema)[1]
    if key.endswith("]"):  # an entry of a free-form table: the first one refused
        kind = _schema_type(schema, path[: len(tables) + 1])
        return _toml_key(_refused_entry(parent, kind) or "")
    return _original_key(parent, key)


_MISSING = object()
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    """``key`` as TOML writes it: bare, or quoted when it has other characters."""
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _table_name(tables: list[str]) -> str:
    return ".".join(_toml_key(t) for t in tables)


def _walk(
    data: Mapping[str, Any], path: list[str], schema: type[ConfigTable] | None = None
) -> tuple[list[str], Any]:
    """The table names along ``path`` (as written in the file) and the value it ends at.

    msgspec says ``[...]`` for a key of a free-form table (``[dkim.domains]``): with
    ``schema``, the first entry the schema refuses stands for it.
    """
    tables: list[str] = []
    value: Any = data
    for depth, step in enumerate(path):
        if step.endswith("]"):  # a list index or msgspec's "[...]" for a dict key
            index = step[:-1]
            if isinstance(value, list) and index.isdigit() and int(index) < len(value):
                value = value[int(index)]
                continue
            entry = _refused_entry(
                value, _schema_type(schema, path[: depth + 1]) if schema else None
            )
            if entry is None:
                return tables, _MISSING
            tables.append(entry)
            value = value[entry]
            continue
        if not isinstance(value, dict):
            return tables, _MISSING
        tables.append(_original_key(value, step))
        value = value.get(tables[-1], _MISSING)
    if not isinstance(value, dict) and tables:
        tables.pop()
    return tables, value


def _refused_entry(table: Any, kind: Any) -> str | None:
    """The first key of ``table`` whose value is not a ``kind``."""
    if not isinstance(table, dict) or kind is None:
        return None
    for key, item in table.items():
        try:
            msgspec.convert(normalise(item), kind, strict=True)
        except msgspec.ValidationError:
            return str(key)
    return None


def _original_key(table: Any, key: str) -> str:
    """The key as written in the file for the normalised ``key``."""
    if isinstance(table, dict):
        from srsfwd.srs_settings import SRS_KEY_ALIASES

        for raw in table:
            normal = raw.replace("-", "_")
            if key in (raw, normal, SRS_KEY_ALIASES.get(normal), POOL_NAMES.get(raw)):
                return str(raw)
    return key


def _known_keys(schema: type[ConfigTable], path: list[str]) -> list[str]:
    kind = _field_type(schema, path)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return list(kind.__struct_fields__)
    return []


def _choices(schema: type[ConfigTable], path: list[str]) -> list[str]:
    """The values a ``Literal`` key allows, from the schema."""
    kind = _field_type(schema, path)
    for option in get_args(kind) or (kind,):
        if get_origin(option) is Literal:
            return [str(choice) for choice in get_args(option)]
    return []


def _field_type(schema: type[ConfigTable], path: list[str]) -> Any:
    """The schema's type at ``path``: its ``Struct`` when it has one (``None`` unions
    taken apart), else the type itself."""
    kind = _schema_type(schema, path)
    structs = [k for k in (get_args(kind) or (kind,)) if _is_struct(k)]
    return structs[0] if structs else kind


def _schema_type(schema: type[ConfigTable], path: list[str]) -> Any:
    """The schema's type at ``path``; a ``...]`` step goes into a table's values or a
    list's items."""
    kind: Any = schema
    for step in path:
        options = get_args(kind) if get_origin(kind) not in (dict, list) else (kind,)
        if step.endswith("]"):
            inner = [get_args(k)[-1] for k in options if get_origin(k) in (dict, list)]
            if not inner:
                return None
            kind = inner[0]
            continue
        structs = [k for k in (options or (kind,)) if _is_struct(k)]
        if not structs:
            return None
        kind = {f.name: f.type for f in msgspec.structs.fields(structs[0])}.get(step)
    return kind


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string: JSON's escapes are TOML's, so no line break shows."""
    return json.dumps(text, ensure_ascii=False)


def _toml(value: Any) -> str:
    """``value`` as TOML writes it, shortened."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    text = _toml_string(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
