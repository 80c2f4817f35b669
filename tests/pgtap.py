"""pgTAP-style schema and behaviour assertions, in Python, for psycopg 3.

Every assertion takes an open psycopg ``Connection`` first, reads the system
catalogs with parameterised queries, and returns ``None`` on success.  On
failure it raises ``AssertionError`` whose message reads like pgTAP's
diagnostics: the first line is the description (a pgTAP-like default, or the
``description=`` you pass), followed by indented ``have:``/``want:`` lines or
record lists, e.g.::

    Function public.fn_x(text) should be security definer
            have: invoker
            want: definer

Objects default to schema ``public``; pass ``schema=`` for another.  Function
arguments are type names as ``format_type`` spells them ('text', 'uuid[]',
'integer', 'character varying'); common aliases (int, int4, bool, varchar,
timestamptz, int8, ...) are normalised.  ``args=None`` means "the only
overload" (``has_function``/``hasnt_function``: "any overload").

Relations and columns
    has_table(conn, name, schema='public')
    hasnt_table(conn, name, schema='public')
    has_view(conn, name, schema='public')
    hasnt_view(conn, name, schema='public')
    has_column(conn, table, column, schema='public')
    col_type_is(conn, table, column, want_type, schema='public')
    col_not_null(conn, table, column, schema='public')
    col_is_null(conn, table, column, schema='public')
    col_has_default(conn, table, column, schema='public')
    col_default_is(conn, table, column, want_expr, schema='public')
    has_pk(conn, table, schema='public')
    col_is_pk(conn, table, columns, schema='public')
    has_index(conn, table, index_name, columns_or_exprs=None, schema='public')
    has_check(conn, table, constraint_name=None, schema='public')
    check_def_contains(conn, table, constraint_name, fragment, schema='public')
    has_fk(conn, table, constraint_name=None, schema='public')
    has_trigger(conn, table, trigger_name, schema='public')
    trigger_is(conn, table, trigger_name, function_name, schema='public')
    table_privs_are(conn, table, role, want_privs, schema='public')

Functions
    has_function(conn, name, args=None, schema='public')
    hasnt_function(conn, name, args=None, schema='public')
    function_returns(conn, name, args, want_type, schema='public')
    volatility_is(conn, name, args, want, schema='public')
    is_definer(conn, name, args, schema='public')
    isnt_definer(conn, name, args, schema='public')
    search_path_pinned(conn, name, args, want='pg_catalog, pg_temp', schema='public')
    execute_revoked_from_public(conn, name, args, schema='public')
    function_privs_are(conn, name, args, role, want_privs, schema='public')

Comments
    has_comment(conn, kind, name, args=None, schema='public')
    comment_is(conn, kind, name, want, args=None, schema='public')

Behaviour and results
    throws_ok(conn, sql, sqlstate, message_contains=None, params=None)
    lives_ok(conn, sql, params=None)
    results_eq(conn, sql, want_rows, params=None)
    set_eq(conn, sql, want_rows, params=None)
    is_empty(conn, sql, params=None)
    row_count_is(conn, sql, n, params=None)

Every assertion also accepts ``description=`` to replace the first line.
Privilege assertions compare the privileges granted *directly* to the role
(``aclexplode`` of the object's ACL, or of ``acldefault`` when it is NULL);
role ``'public'`` is the PUBLIC pseudo-role (grantee 0).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import psycopg
from psycopg.abc import Query
from psycopg.rows import dict_row, tuple_row

Row = dict[str, Any]

# ---------------------------------------------------------------------------
# Diagnostics and small helpers
# ---------------------------------------------------------------------------


def _fail(description: str, *lines: str, **labelled: object) -> NoReturn:
    """Raise AssertionError: description, free lines, then `label: value` lines.

    Labels are right-aligned like pgTAP's (`        have:`, `      caught:`).
    """
    body = [description, *lines]
    body += [f"{label:>12}: {value}" for label, value in labelled.items()]
    raise AssertionError("\n".join(body))


def _records(title: str, rows: Sequence[object]) -> list[str]:
    """A pgTAP record list: a four-space title line, then one row per line."""
    return [f"    {title}:", *(f"        {row!r}" for row in rows)]


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _multiset_minus(left: Sequence[Any], right: Sequence[Any]) -> list[Any]:
    """Items of `left` not matched one-for-one in `right` (works for unhashable rows)."""
    remaining = list(right)
    extra = []
    for item in left:
        if item in remaining:
            remaining.remove(item)
        else:
            extra.append(item)
    return extra


def _catalog(conn: psycopg.Connection, query: str, params: Sequence[Any]) -> list[Row]:
    """Run a catalog query and return dict rows, whatever the caller's row_factory."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _fetch(conn: psycopg.Connection, sql: Query, params: Any) -> list[tuple[Any, ...]]:
    """Run a caller's query and return its rows as tuples."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []


@contextmanager
def _savepoint(conn: psycopg.Connection) -> Iterator[None]:
    """A nested transaction that never commits the caller's own work by itself.

    In autocommit mode `conn.transaction()` is a BEGIN/COMMIT block (or a
    SAVEPOINT inside an enclosing block).  Without autocommit, an idle
    connection would get BEGIN/COMMIT too, committing behind the caller's
    back; opening the implicit transaction first makes it a SAVEPOINT.
    """
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if not conn.autocommit and idle:
        conn.execute("SELECT 1")
    with conn.transaction():
        yield


def _sql_excerpt(sql: Query, width: int = 60) -> str:
    text = sql if isinstance(sql, str) else repr(sql)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# ---------------------------------------------------------------------------
# Type names
# ---------------------------------------------------------------------------

_TYPE_ALIASES = {
    "int": "integer",
    "int4": "integer",
    "int2": "smallint",
    "int8": "bigint",
    "bool": "boolean",
    "varchar": "character varying",
    "char": "character",
    "float4": "real",
    "float8": "double precision",
    "float": "double precision",
    "decimal": "numeric",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "timetz": "time with time zone",
    "varbit": "bit varying",
}


def _normalise_type(name: str) -> str:
    """Spell a type name the way `format_type` does ('int4' -> 'integer').

    Keeps array brackets and type modifiers: 'varchar(64)[]' ->
    'character varying(64)[]', 'timestamptz(3)' -> 'timestamp(3) with time zone'.
    Names containing double quotes are only whitespace-normalised.
    """
    text = " ".join(name.split())
    if '"' in text:
        return text
    text = text.lower()
    arrays = ""
    while text.endswith("[]"):
        arrays += "[]"
        text = text[:-2].rstrip()
    modifier = ""
    match = re.search(r"\s*\(([^)]*)\)", text)
    if match:
        modifier = "(" + ",".join(part.strip() for part in match.group(1).split(",")) + ")"
        text = " ".join((text[: match.start()] + " " + text[match.end() :]).split())
    text = _TYPE_ALIASES.get(text, text)
    if modifier:
        head, _, tail = text.partition(" ")
        if head in ("timestamp", "time") and tail:
            text = f"{head}{modifier} {tail}"
        else:
            text += modifier
    return text + arrays


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------

_OVERLOADS = """
SELECT p.oid, n.nspname AS schema, p.proname AS name,
       ARRAY(SELECT pg_catalog.format_type(a.t, NULL)
               FROM unnest(p.proargtypes::pg_catalog.oid[]) WITH ORDINALITY AS a(t, i)
              ORDER BY a.i) AS args,
       p.prosecdef, p.provolatile, p.proconfig, p.proretset,
       pg_catalog.format_type(p.prorettype, NULL) AS rettype,
       pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
  FROM pg_catalog.pg_proc AS p
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname = %s AND p.proname = %s
 ORDER BY p.oid
"""


def _signature(schema: str, name: str, args: Sequence[str] | None) -> str:
    if args is None:
        return f"{schema}.{name}"
    return f"{schema}.{name}({', '.join(_normalise_type(a) for a in args)})"


def _overloads(conn: psycopg.Connection, schema: str, name: str) -> list[Row]:
    return _catalog(conn, _OVERLOADS, (schema, name))


def _proc(
    conn: psycopg.Connection, schema: str, name: str, args: Sequence[str] | None
) -> Row | None:
    """The pg_proc row for schema.name(args), or None.

    With args=None the function must have exactly one overload.
    """
    overloads = _overloads(conn, schema, name)
    if args is None:
        return overloads[0] if len(overloads) == 1 else None
    want = [_normalise_type(a) for a in args]
    return next((p for p in overloads if p["args"] == want), None)


def _function(
    conn: psycopg.Connection,
    schema: str,
    name: str,
    args: Sequence[str] | None,
    description: str,
) -> Row:
    """`_proc`, failing with pgTAP's "Function x(args) does not exist" diagnostic."""
    proc = _proc(conn, schema, name, args)
    if proc is not None:
        return proc
    sig = _signature(schema, name, args)
    if args is None and _overloads(conn, schema, name):
        _fail(description, f"    Function {sig} is overloaded; pass args to choose one")
    _fail(description, f"    Function {sig} does not exist")


def _overload_list(overloads: Sequence[Row]) -> str:
    return _names([_signature(p["schema"], p["name"], p["args"]) for p in overloads])


def has_function(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None = None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """schema.name(args) exists; with args=None, any overload of name exists."""
    sig = _signature(schema, name, args)
    description = description or f"Function {sig} should exist"
    overloads = _overloads(conn, schema, name)
    want = None if args is None else [_normalise_type(a) for a in args]
    if any(want is None or p["args"] == want for p in overloads):
        return
    _fail(description, have=_overload_list(overloads), want=sig)


def hasnt_function(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None = None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """schema.name(args) does not exist; with args=None, no overload of name exists."""
    sig = _signature(schema, name, args)
    description = description or f"Function {sig} should not exist"
    want = None if args is None else [_normalise_type(a) for a in args]
    found = [p for p in _overloads(conn, schema, name) if want is None or p["args"] == want]
    if found:
        _fail(description, have=_overload_list(found), want="none")


def function_returns(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None,
    want_type: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The function returns want_type ('integer', 'setof text', 'trigger', 'void')."""
    description = description or (
        f"Function {_signature(schema, name, args)} should return {want_type}"
    )
    proc = _function(conn, schema, name, args, description)
    have = ("setof " if proc["proretset"] else "") + proc["rettype"]
    setof, _, base = want_type.strip().partition(" ")
    want = (
        f"setof {_normalise_type(base)}" if setof.lower() == "setof" else _normalise_type(want_type)
    )
    if have != want:
        _fail(description, have=have, want=want)


_VOLATILITY = {"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}


def volatility_is(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None,
    want: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The function is 'immutable', 'stable' or 'volatile'."""
    want = want.upper()
    if want not in _VOLATILITY.values():
        raise ValueError(f"volatility must be immutable, stable or volatile, not {want!r}")
    description = description or f"Function {_signature(schema, name, args)} should be {want}"
    have = _VOLATILITY[_function(conn, schema, name, args, description)["provolatile"]]
    if have != want:
        _fail(description, have=have, want=want)


def _security(
    conn: psycopg.Connection,
    schema: str,
    name: str,
    args: Sequence[str] | None,
    want_definer: bool,
    description: str | None,
) -> None:
    sig = _signature(schema, name, args)
    description = description or (
        f"Function {sig} should {'' if want_definer else 'not '}be security definer"
    )
    definer = _function(conn, schema, name, args, description)["prosecdef"]
    if definer != want_definer:
        _fail(
            description,
            have="definer" if definer else "invoker",
            want="definer" if want_definer else "invoker",
        )


def is_definer(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The function is SECURITY DEFINER."""
    _security(conn, schema, name, args, True, description)


def isnt_definer(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The function is SECURITY INVOKER."""
    _security(conn, schema, name, args, False, description)


def _search_path_names(value: str) -> list[str]:
    """Split a search_path value into schema names, as the server would.

    Unquoted names are lower-cased and lose surrounding whitespace; quoted
    names are kept verbatim ("" is a literal quote).  So 'pg_catalog,pg_temp'
    and 'pg_catalog, "pg_temp"' agree, while '"pg_catalog, pg_temp"' is one
    (non-existent) schema -- what SET search_path = 'a, b' really stores.
    """
    names: list[str] = []
    current = ""
    quoted = just_closed = False
    for char in value:
        if quoted:
            if char == '"':
                quoted, just_closed = False, True
            else:
                current += char
            continue
        if char == '"':
            if just_closed:
                current += '"'
            quoted, just_closed = True, False
            continue
        just_closed = False
        if char == ",":
            names.append(current)
            current = ""
        elif not char.isspace():
            current += char.lower()
    names.append(current)
    return names


def search_path_pinned(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None,
    want: str = "pg_catalog, pg_temp",
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The function has `SET search_path = <want>` in pg_proc.proconfig."""
    description = description or (
        f"Function {_signature(schema, name, args)} should pin search_path to {want}"
    )
    config = _function(conn, schema, name, args, description)["proconfig"] or []
    setting = next((c for c in config if c.startswith("search_path=")), None)
    have_path = None if setting is None else setting.removeprefix("search_path=")
    if have_path is None or _search_path_names(have_path) != _search_path_names(want):
        _fail(description, have=setting or "not set", want=f"search_path={want}")


# ---------------------------------------------------------------------------
# Privileges
# ---------------------------------------------------------------------------

_FUNCTION_PRIVS = """
SELECT DISTINCT a.privilege_type
  FROM pg_catalog.pg_proc AS p,
       pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
 WHERE p.oid = %s AND a.grantee = %s
 ORDER BY 1
"""

_TABLE_PRIVS = """
SELECT DISTINCT a.privilege_type
  FROM pg_catalog.pg_class AS c,
       pg_catalog.aclexplode(coalesce(
           c.relacl,
           pg_catalog.acldefault(
               CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) AS a
 WHERE c.oid = %s AND a.grantee = %s
 ORDER BY 1
"""


def _role_oid(conn: psycopg.Connection, role: str, description: str) -> int:
    """Grantee oid for role; 'public' is the PUBLIC pseudo-role, grantee 0."""
    if role.lower() == "public":
        return 0
    rows = _catalog(conn, "SELECT oid FROM pg_catalog.pg_roles WHERE rolname = %s", (role,))
    if not rows:
        _fail(description, f"    Role {role} does not exist")
    return rows[0]["oid"]


def _privs_are(
    conn: psycopg.Connection,
    query: str,
    oid: int,
    role: str,
    want_privs: Sequence[str],
    description: str,
) -> None:
    grantee = _role_oid(conn, role, description)
    have = [r["privilege_type"] for r in _catalog(conn, query, (oid, grantee))]
    want = sorted({p.upper() for p in want_privs})
    extra = [p for p in have if p not in want]
    missing = [p for p in want if p not in have]
    if extra or missing:
        lines = []
        if extra:
            lines += ["    Extra privileges:", *(f"        {p}" for p in extra)]
        if missing:
            lines += ["    Missing privileges:", *(f"        {p}" for p in missing)]
        _fail(description, *lines)


def _privs_phrase(want_privs: Sequence[str]) -> str:
    return ", ".join(p.upper() for p in want_privs) or "no privileges"


def execute_revoked_from_public(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """PUBLIC holds no EXECUTE on the function (the default grants it)."""
    description = description or (
        f"Function {_signature(schema, name, args)} should not be executable by PUBLIC"
    )
    proc = _function(conn, schema, name, args, description)
    privs = [r["privilege_type"] for r in _catalog(conn, _FUNCTION_PRIVS, (proc["oid"], 0))]
    if "EXECUTE" in privs:
        _fail(description, have="EXECUTE granted to PUBLIC", want="EXECUTE revoked from PUBLIC")


def function_privs_are(
    conn: psycopg.Connection,
    name: str,
    args: Sequence[str] | None,
    role: str,
    want_privs: Sequence[str],
    schema: str = "public",
    description: str | None = None,
) -> None:
    """role holds exactly want_privs (e.g. ['EXECUTE'] or []) on the function."""
    description = description or (
        f"Role {role} should be granted {_privs_phrase(want_privs)} "
        f"on function {_signature(schema, name, args)}"
    )
    proc = _function(conn, schema, name, args, description)
    _privs_are(conn, _FUNCTION_PRIVS, proc["oid"], role, want_privs, description)


def table_privs_are(
    conn: psycopg.Connection,
    table: str,
    role: str,
    want_privs: Sequence[str],
    schema: str = "public",
    description: str | None = None,
) -> None:
    """role holds exactly want_privs (e.g. ['SELECT', 'INSERT']) on the table or view."""
    description = description or (
        f"Role {role} should be granted {_privs_phrase(want_privs)} on table {schema}.{table}"
    )
    rel = _relation(conn, schema, table, description)
    _privs_are(conn, _TABLE_PRIVS, rel["oid"], role, want_privs, description)


# ---------------------------------------------------------------------------
# Relations
# ---------------------------------------------------------------------------

_TABLE_KINDS = ("r", "p")
_VIEW_KINDS = ("v",)
_COLUMN_KINDS = ("r", "p", "v", "m", "f")

_RELATION = """
SELECT c.oid, c.relkind::text AS relkind,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s
"""


def _find_relation(conn: psycopg.Connection, schema: str, name: str) -> Row | None:
    rows = _catalog(conn, _RELATION, (schema, name))
    return rows[0] if rows else None


def _relation(
    conn: psycopg.Connection,
    schema: str,
    name: str,
    description: str,
    kinds: Sequence[str] = _COLUMN_KINDS,
    noun: str = "Table",
) -> Row:
    rel = _find_relation(conn, schema, name)
    if rel is None or rel["relkind"] not in kinds:
        _fail(description, f"    {noun} {schema}.{name} does not exist")
    return rel


_KIND_NAMES = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
    "i": "index",
    "I": "partitioned index",
    "S": "sequence",
    "c": "composite type",
    "t": "TOAST table",
}


def _has_relation(
    conn: psycopg.Connection,
    schema: str,
    name: str,
    kinds: Sequence[str],
    noun: str,
    want_exists: bool,
    description: str | None,
) -> None:
    description = description or (
        f"{noun} {schema}.{name} should {'' if want_exists else 'not '}exist"
    )
    rel = _find_relation(conn, schema, name)
    exists = rel is not None and rel["relkind"] in kinds
    if exists == want_exists:
        return
    if want_exists and rel is not None:
        _fail(
            description,
            have=f"{schema}.{name} is a {_KIND_NAMES[rel['relkind']]}",
            want=f"{schema}.{name} is a {noun.lower()}",
        )
    _fail(description)


def has_table(
    conn: psycopg.Connection, name: str, schema: str = "public", description: str | None = None
) -> None:
    """schema.name is a table (ordinary or partitioned)."""
    _has_relation(conn, schema, name, _TABLE_KINDS, "Table", True, description)


def hasnt_table(
    conn: psycopg.Connection, name: str, schema: str = "public", description: str | None = None
) -> None:
    """schema.name is not a table."""
    _has_relation(conn, schema, name, _TABLE_KINDS, "Table", False, description)


def has_view(
    conn: psycopg.Connection, name: str, schema: str = "public", description: str | None = None
) -> None:
    """schema.name is a view."""
    _has_relation(conn, schema, name, _VIEW_KINDS, "View", True, description)


def hasnt_view(
    conn: psycopg.Connection, name: str, schema: str = "public", description: str | None = None
) -> None:
    """schema.name is not a view."""
    _has_relation(conn, schema, name, _VIEW_KINDS, "View", False, description)


# ---------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------

_COLUMN = """
SELECT a.attnum, a.attnotnull, a.atthasdef,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default,
       pg_catalog.col_description(a.attrelid, a.attnum) AS comment
  FROM pg_catalog.pg_attribute AS a
  LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
"""


def _find_column(conn: psycopg.Connection, schema: str, table: str, column: str) -> Row | None:
    rel = _find_relation(conn, schema, table)
    if rel is None or rel["relkind"] not in _COLUMN_KINDS:
        return None
    rows = _catalog(conn, _COLUMN, (rel["oid"], column))
    return rows[0] if rows else None


def _column(
    conn: psycopg.Connection, schema: str, table: str, column: str, description: str
) -> Row:
    col = _find_column(conn, schema, table, column)
    if col is None:
        _fail(description, f"    Column {schema}.{table}.{column} does not exist")
    return col


def has_column(
    conn: psycopg.Connection,
    table: str,
    column: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """table.column exists (tables, views, materialized views, foreign tables)."""
    description = description or f"Column {schema}.{table}.{column} should exist"
    if _find_column(conn, schema, table, column) is None:
        _fail(description)


def col_type_is(
    conn: psycopg.Connection,
    table: str,
    column: str,
    want_type: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The column's type, as format_type prints it with its modifier, is want_type."""
    want = _normalise_type(want_type)
    description = description or f"Column {schema}.{table}.{column} should be type {want}"
    have = _column(conn, schema, table, column, description)["type"]
    if have != want:
        _fail(description, have=have, want=want)


def col_not_null(
    conn: psycopg.Connection,
    table: str,
    column: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The column is NOT NULL."""
    description = description or f"Column {schema}.{table}.{column} should be NOT NULL"
    if not _column(conn, schema, table, column, description)["attnotnull"]:
        _fail(description, have="NULL allowed", want="NOT NULL")


def col_is_null(
    conn: psycopg.Connection,
    table: str,
    column: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The column allows NULL."""
    description = description or f"Column {schema}.{table}.{column} should allow NULL"
    if _column(conn, schema, table, column, description)["attnotnull"]:
        _fail(description, have="NOT NULL", want="NULL allowed")


def col_has_default(
    conn: psycopg.Connection,
    table: str,
    column: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The column has a default expression."""
    description = description or f"Column {schema}.{table}.{column} should have a default"
    if not _column(conn, schema, table, column, description)["atthasdef"]:
        _fail(description, have="no default", want="a default")


def col_default_is(
    conn: psycopg.Connection,
    table: str,
    column: str,
    want_expr: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The column's default, as pg_get_expr prints it, is want_expr (e.g. 'now()')."""
    description = description or (f"Column {schema}.{table}.{column} should default to {want_expr}")
    have = _column(conn, schema, table, column, description)["default"]
    if have != want_expr:
        _fail(description, have="no default" if have is None else have, want=want_expr)


# ---------------------------------------------------------------------------
# Constraints, indexes, triggers
# ---------------------------------------------------------------------------

_CONSTRAINTS = """
SELECT c.conname AS name, pg_catalog.pg_get_constraintdef(c.oid, true) AS definition,
       ARRAY(SELECT a.attname::text
               FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, i)
               JOIN pg_catalog.pg_attribute AS a
                 ON a.attrelid = c.conrelid AND a.attnum = k.attnum
              ORDER BY k.i) AS columns
  FROM pg_catalog.pg_constraint AS c
 WHERE c.conrelid = %s AND c.contype = %s
 ORDER BY c.conname
"""


def _constraints(conn: psycopg.Connection, table_oid: int, contype: str) -> list[Row]:
    return _catalog(conn, _CONSTRAINTS, (table_oid, contype))


def has_pk(
    conn: psycopg.Connection, table: str, schema: str = "public", description: str | None = None
) -> None:
    """The table has a primary key."""
    description = description or f"Table {schema}.{table} should have a primary key"
    rel = _relation(conn, schema, table, description, _TABLE_KINDS)
    if not _constraints(conn, rel["oid"], "p"):
        _fail(description, have="no primary key", want="a primary key")


def col_is_pk(
    conn: psycopg.Connection,
    table: str,
    columns: str | Sequence[str],
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The primary key is exactly these columns, in this order."""
    want = [columns] if isinstance(columns, str) else list(columns)
    noun = "Column" if len(want) == 1 else "Columns"
    description = description or (
        f"{noun} {schema}.{table}({', '.join(want)}) should be a primary key"
    )
    rel = _relation(conn, schema, table, description, _TABLE_KINDS)
    pk = _constraints(conn, rel["oid"], "p")
    have = pk[0]["columns"] if pk else None
    if have != want:
        _fail(
            description,
            have="no primary key" if have is None else f"{schema}.{table}({', '.join(have)})",
            want=f"{schema}.{table}({', '.join(want)})",
        )


def _named_constraint(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    contype: str,
    noun: str,
    constraint_name: str | None,
    description: str | None,
) -> Row:
    description = description or (
        f"Table {schema}.{table} should have {noun} {constraint_name}"
        if constraint_name
        else f"Table {schema}.{table} should have a {noun}"
    )
    rel = _relation(conn, schema, table, description, _TABLE_KINDS)
    found = _constraints(conn, rel["oid"], contype)
    match = [c for c in found if constraint_name is None or c["name"] == constraint_name]
    if not match:
        _fail(
            description,
            have=_names([c["name"] for c in found]),
            want=constraint_name or f"a {noun}",
        )
    return match[0]


def has_check(
    conn: psycopg.Connection,
    table: str,
    constraint_name: str | None = None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The table has a CHECK constraint (the named one, if given)."""
    _named_constraint(conn, schema, table, "c", "check constraint", constraint_name, description)


def check_def_contains(
    conn: psycopg.Connection,
    table: str,
    constraint_name: str,
    fragment: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The named CHECK constraint's pg_get_constraintdef text contains fragment."""
    description = description or (
        f"Check constraint {constraint_name} on {schema}.{table} should contain {fragment}"
    )
    check = _named_constraint(
        conn, schema, table, "c", "check constraint", constraint_name, description
    )
    if fragment not in check["definition"]:
        _fail(description, have=check["definition"], want=f"contains {fragment}")


def has_fk(
    conn: psycopg.Connection,
    table: str,
    constraint_name: str | None = None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The table has a FOREIGN KEY constraint (the named one, if given)."""
    _named_constraint(conn, schema, table, "f", "foreign key", constraint_name, description)


_INDEXES = """
SELECT ic.relname AS name,
       ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true)
                    || CASE WHEN i.indoption[k - 1] & 1 = 1 THEN ' DESC' ELSE '' END
                    || CASE i.indoption[k - 1] & 3
                         WHEN 2 THEN ' NULLS FIRST' WHEN 1 THEN ' NULLS LAST' ELSE '' END
               FROM generate_series(1, i.indnkeyatts) AS k
              ORDER BY k) AS keys
  FROM pg_catalog.pg_index AS i
  JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
 WHERE i.indrelid = %s
 ORDER BY ic.relname
"""


def _normalise_index_key(key: str) -> str:
    """'created_at  desc' -> 'created_at DESC'; drops the defaults ASC / matching NULLS."""
    text = " ".join(key.split())
    match = re.fullmatch(
        r"(.+?)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?", text, flags=re.IGNORECASE
    )
    if match is None:  # empty key: nothing to normalise
        return text
    expr, direction, nulls = match.groups()
    desc = (direction or "").lower() == "desc"
    nulls = (nulls or ("first" if desc else "last")).lower()
    suffix = " DESC" if desc else ""
    if nulls != ("first" if desc else "last"):
        suffix += f" NULLS {nulls.upper()}"
    return expr + suffix


def has_index(
    conn: psycopg.Connection,
    table: str,
    index_name: str,
    columns_or_exprs: Sequence[str] | None = None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """index_name is an index on table; if given, its key columns/expressions match.

    Keys are compared in order, as `pg_get_indexdef(index, k, true)` prints them,
    with DESC / non-default NULLS ordering: ['command_name', 'created_at DESC'].
    INCLUDE columns are not keys and are not compared.
    """
    want = None if columns_or_exprs is None else [_normalise_index_key(k) for k in columns_or_exprs]
    on = f"{schema}.{table}" + ("" if want is None else f"({', '.join(want)})")
    description = description or f"Index {index_name} should exist on {on}"
    rel = _relation(conn, schema, table, description)
    indexes = _catalog(conn, _INDEXES, (rel["oid"],))
    index = next((i for i in indexes if i["name"] == index_name), None)
    if index is None:
        _fail(description, have=_names([i["name"] for i in indexes]), want=index_name)
    if want is not None and index["keys"] != want:
        _fail(
            description,
            have=f"{index_name} ON {schema}.{table}({', '.join(index['keys'])})",
            want=f"{index_name} ON {on}",
        )


_TRIGGERS = """
SELECT t.tgname AS name, n.nspname AS function_schema, p.proname AS function_name
  FROM pg_catalog.pg_trigger AS t
  JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
 WHERE t.tgrelid = %s AND NOT t.tgisinternal
 ORDER BY t.tgname
"""


def _trigger(
    conn: psycopg.Connection, schema: str, table: str, trigger_name: str, description: str
) -> Row:
    rel = _relation(conn, schema, table, description)
    triggers = _catalog(conn, _TRIGGERS, (rel["oid"],))
    trigger = next((t for t in triggers if t["name"] == trigger_name), None)
    if trigger is None:
        _fail(description, have=_names([t["name"] for t in triggers]), want=trigger_name)
    return trigger


def has_trigger(
    conn: psycopg.Connection,
    table: str,
    trigger_name: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The table has the named (user-defined) trigger."""
    description = description or f"Table {schema}.{table} should have trigger {trigger_name}"
    _trigger(conn, schema, table, trigger_name, description)


def trigger_is(
    conn: psycopg.Connection,
    table: str,
    trigger_name: str,
    function_name: str,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The trigger calls function_name ('fn' or schema-qualified 'schema.fn')."""
    description = description or (
        f"Trigger {trigger_name} on {schema}.{table} should call {function_name}()"
    )
    trigger = _trigger(conn, schema, table, trigger_name, description)
    qualified = f"{trigger['function_schema']}.{trigger['function_name']}"
    have = qualified if "." in function_name else trigger["function_name"]
    if have != function_name:
        _fail(description, have=f"{qualified}()", want=f"{function_name}()")


# ---------------------------------------------------------------------------
# Comments
# ---------------------------------------------------------------------------

_COMMENT_KINDS = ("table", "view", "function", "column")


def _comment(
    conn: psycopg.Connection,
    kind: str,
    name: str,
    args: Sequence[str] | None,
    schema: str,
    description: str,
) -> str | None:
    if kind == "function":
        return _function(conn, schema, name, args, description)["comment"]
    if kind == "column":
        table, _, column = name.partition(".")
        return _column(conn, schema, table, column, description)["comment"]
    kinds, noun = (_TABLE_KINDS, "Table") if kind == "table" else (_VIEW_KINDS, "View")
    return _relation(conn, schema, name, description, kinds, noun)["comment"]


def _comment_subject(kind: str, name: str, args: Sequence[str] | None, schema: str) -> str:
    if kind not in _COMMENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_COMMENT_KINDS)}, not {kind!r}")
    target = _signature(schema, name, args) if kind == "function" else f"{schema}.{name}"
    return f"{kind.capitalize()} {target}"


def has_comment(
    conn: psycopg.Connection,
    kind: str,
    name: str,
    args: Sequence[str] | None = None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The table / view / function / column ('table.column') has a COMMENT."""
    subject = _comment_subject(kind, name, args, schema)
    description = description or f"{subject} should have a comment"
    if not _comment(conn, kind, name, args, schema, description):
        _fail(description, have="no comment", want="a comment")


def comment_is(
    conn: psycopg.Connection,
    kind: str,
    name: str,
    want: str,
    args: Sequence[str] | None = None,
    schema: str = "public",
    description: str | None = None,
) -> None:
    """The table / view / function / column ('table.column') COMMENT is exactly want."""
    subject = _comment_subject(kind, name, args, schema)
    description = description or f"{subject} should have the expected comment"
    have = _comment(conn, kind, name, args, schema, description)
    if have != want:
        _fail(description, have="no comment" if have is None else have, want=want)


# ---------------------------------------------------------------------------
# Behaviour: throws_ok / lives_ok
# ---------------------------------------------------------------------------


def _error_text(exc: psycopg.Error) -> str:
    message = exc.diag.message_primary or str(exc).strip()
    return f"{exc.sqlstate}: {message}"


def throws_ok(
    conn: psycopg.Connection,
    sql: Query,
    sqlstate: str,
    message_contains: str | None = None,
    params: Any = None,
    description: str | None = None,
) -> psycopg.Error:
    """sql raises an error with exactly this SQLSTATE (and message fragment, if given).

    The statement runs in a savepoint (or its own transaction) that is always
    rolled back -- even when nothing was raised -- so its effects vanish and
    the caller's transaction stays usable.  Returns the caught exception, so a
    test can inspect `.diag`.
    """
    wanted = sqlstate + (f": ...{message_contains}..." if message_contains else "")
    description = description or f"threw {wanted}"
    try:
        with _savepoint(conn):
            _fetch(conn, sql, params)
            raise psycopg.Rollback  # no error: undo the statement all the same
    except psycopg.Error as exc:
        caught = exc
    else:
        _fail(description, caught="no exception", wanted=wanted)
    message = caught.diag.message_primary or str(caught)
    if caught.sqlstate != sqlstate or (message_contains and message_contains not in message):
        _fail(description, caught=_error_text(caught), wanted=wanted)
    return caught


def lives_ok(
    conn: psycopg.Connection,
    sql: Query,
    params: Any = None,
    description: str | None = None,
) -> None:
    """sql runs without error; its effects are kept (the savepoint is released)."""
    description = description or f"Statement should run without error: {_sql_excerpt(sql)}"
    try:
        with _savepoint(conn):
            _fetch(conn, sql, params)
    except psycopg.Error as exc:
        _fail(description, died=_error_text(exc))


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


def results_eq(
    conn: psycopg.Connection,
    sql: Query,
    want_rows: Sequence[tuple[Any, ...]],
    params: Any = None,
    description: str | None = None,
) -> None:
    """sql returns exactly want_rows, in order."""
    description = description or "Query should return the wanted rows, in order"
    have_rows = _fetch(conn, sql, params)
    want_rows = [tuple(row) for row in want_rows]
    for number in range(max(len(have_rows), len(want_rows))):
        have = have_rows[number] if number < len(have_rows) else None
        want = want_rows[number] if number < len(want_rows) else None
        if have != want:
            _fail(
                description,
                f"    Results differ beginning at row {number + 1}:",
                have="no row" if have is None else repr(have),
                want="no row" if want is None else repr(want),
            )


def set_eq(
    conn: psycopg.Connection,
    sql: Query,
    want_rows: Sequence[tuple[Any, ...]],
    params: Any = None,
    description: str | None = None,
) -> None:
    """sql returns want_rows in any order (duplicates count)."""
    description = description or "Query should return the wanted set of rows"
    have_rows = _fetch(conn, sql, params)
    want_rows = [tuple(row) for row in want_rows]
    extra = _multiset_minus(have_rows, want_rows)
    missing = _multiset_minus(want_rows, have_rows)
    if extra or missing:
        lines = []
        if extra:
            lines += _records("Extra records", extra)
        if missing:
            lines += _records("Missing records", missing)
        _fail(description, *lines)


def is_empty(
    conn: psycopg.Connection,
    sql: Query,
    params: Any = None,
    description: str | None = None,
) -> None:
    """sql returns no rows."""
    description = description or "Query should return no rows"
    rows = _fetch(conn, sql, params)
    if rows:
        _fail(description, *_records("Unexpected records", rows))


def row_count_is(
    conn: psycopg.Connection,
    sql: Query,
    n: int,
    params: Any = None,
    description: str | None = None,
) -> None:
    """sql returns exactly n rows."""
    description = description or f"Query should return {n} row{'' if n == 1 else 's'}"
    have = len(_fetch(conn, sql, params))
    if have != n:
        _fail(description, have=have, want=n)
