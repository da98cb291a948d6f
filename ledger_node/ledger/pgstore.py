"""The node's store on a PostgreSQL server (psycopg 3), for organisations past one machine.

The same tables and the same statements as the embedded SQLite store (`store`): the
project's SQL is written once, in SQLite's dialect, and `PgDb` translates each statement
once (cached) as it first meets it:

- `?` parameters become `%s` (a literal `%` is doubled);
- `INSERT OR REPLACE` becomes an upsert on the table's primary key, `INSERT OR IGNORE` an
  insert `ON CONFLICT DO NOTHING` (the keys are read from the schema text);
- `json_each(?)` becomes `json_array_elements_text(…)`, `group_concat(x)` `string_agg`,
  `instr` `strpos`; SQLite's unary `+` (which only steers its planner) goes;
- `BEGIN IMMEDIATE` is `BEGIN`; `PRAGMA table_info` reads `information_schema`, other
  pragmas do nothing.

The schema's types map BLOB → BYTEA, INTEGER → BIGINT, REAL → DOUBLE PRECISION (a
`SUM` over BIGINT comes back as an int, not a `Decimal`). Each node has its own database
(or its own schema through `options=-csearch_path=…` in the URL). The connection runs in
autocommit mode: `store.transaction` brackets a write transaction with BEGIN and COMMIT.
Deleted rows (a shredded epoch's readings) leave the table's files only at the next
VACUUM: `purge` runs one.

May import: psycopg (nothing of this project: `store` hands it the schema).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.adapt import Loader

SCHEMA_LOCK = 0x6D6C6701
"""The advisory lock key held while a process creates or migrates the schema (front-ends
and the sequencer may start together)."""


class _WholeNumeric(Loader):
    """NUMERIC as int when whole (what `SUM` over BIGINT gives), else float."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return float(text) if any(c in text for c in ".eE") or text == "NaN" else int(text)


# -- the schema --------------------------------------------------------------------------------

_TYPES = (
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bvalue ANY\b"), "value TEXT"),
    (re.compile(r"\)\s*STRICT(\s*,\s*WITHOUT ROWID)?\s*;"), ");"),
)
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\)\s*(?:STRICT[^;]*)?;", re.S)


def schema_sql(sqlite_sql: str) -> str:
    """The SQLite schema (or a migration statement) in PostgreSQL's types."""
    for pattern, replacement in _TYPES:
        sqlite_sql = pattern.sub(replacement, sqlite_sql)
    return sqlite_sql


def table_keys(sqlite_schema: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each table's columns and primary key, read from the schema text."""
    tables: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for name, text in _TABLE.findall(sqlite_schema):
        body = re.sub(r"--[^\n]*", "", text)
        parts, depth, cur = [], 0, ""
        for ch in body:
            depth += (ch == "(") - (ch == ")")
            if ch == "," and depth == 0:
                parts.append(cur.strip())
                cur = ""
            else:
                cur += ch
        parts.append(cur.strip())
        columns: list[str] = []
        key: tuple[str, ...] = ()
        for part in filter(None, parts):
            if part.upper().startswith("PRIMARY KEY"):
                inner = part[part.index("(") + 1 : part.rindex(")")]
                key = tuple(c.strip() for c in inner.split(","))
            elif not part.upper().startswith(("UNIQUE", "CHECK", "FOREIGN")):
                column = part.split()[0]
                columns.append(column)
                if "PRIMARY KEY" in part.upper():
                    key = (column,)
        tables[name] = (tuple(columns), key)
    return tables


# -- statements --------------------------------------------------------------------------------

_INSERT_OR = re.compile(r"\s*INSERT\s+OR\s+(REPLACE|IGNORE)\s+INTO\s+(\w+)", re.I)
_REWRITES = (
    (re.compile(r"json_each\(\?\)"), "json_array_elements_text(?::json)"),
    (re.compile(r"group_concat\(([\w.]+)\)"), r"string_agg((\1)::text, ',')"),
    (re.compile(r"\binstr\("), "strpos("),
    (re.compile(r"(?<=[\s(])\+(?=[A-Za-z_])"), ""),
    (re.compile(r"^\s*BEGIN IMMEDIATE\s*$", re.I), "BEGIN"),
)
_TABLE_INFO = re.compile(r"\s*PRAGMA\s+table_info\((\w+)\)", re.I)


def _placeholders(sql: str) -> str:
    """`?` → `%s` and `%` → `%%`, outside quoted strings."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        if ch == "%":
            out.append("%%")
            continue
        out.append(ch)
    return "".join(out)


class PgDb:
    """A PostgreSQL connection that runs the store's SQLite-dialect statements."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any], sqlite_schema: str) -> None:
        self.conn = conn
        conn.adapters.register_loader("numeric", _WholeNumeric)
        self._tables = table_keys(sqlite_schema)
        self._translate = functools.lru_cache(maxsize=4096)(self._translation)

    def _translation(self, sql: str, with_params: bool) -> str | None:
        """`sql` in PostgreSQL's dialect; None for a pragma that means nothing there."""
        if m := _TABLE_INFO.match(sql):
            return (
                "SELECT ordinal_position, column_name FROM information_schema.columns"  # noqa: S608
                f" WHERE table_schema = current_schema() AND table_name = '{m.group(1)}'"
                " ORDER BY ordinal_position"  # the name is a \w+ of a schema statement
            )
        if sql.lstrip().upper().startswith("PRAGMA"):
            return None
        if sql.lstrip().upper().startswith("CREATE TABLE"):
            self._tables.update(table_keys(sql if sql.rstrip().endswith(";") else sql + ";"))
            return schema_sql(sql)
        if m := _INSERT_OR.match(sql):
            how, table = m.group(1).upper(), m.group(2)
            sql = f"INSERT INTO {table}{sql[m.end() :]}".rstrip().rstrip(";")
            columns, key = self._tables[table]
            if how == "IGNORE" or not key:
                sql += " ON CONFLICT DO NOTHING"
            else:
                sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
                sql += f" ON CONFLICT ({', '.join(key)}) DO " + (
                    f"UPDATE SET {sets}" if sets else "NOTHING"
                )
        for pattern, replacement in _REWRITES:
            sql = pattern.sub(replacement, sql)
        return _placeholders(sql) if with_params else sql

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        translated = self._translate(sql, bool(parameters))
        if translated is None:
            return self.conn.cursor()
        if not parameters:
            return self.conn.execute(translated)
        return self.conn.execute(translated, [_param(p) for p in parameters])

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Any]:
        cur = self.conn.cursor()
        rows = [[_param(p) for p in row] for row in seq]
        if rows:
            translated = self._translate(sql, True)
            assert translated is not None, sql
            cur.executemany(translated, rows)
        return cur

    def executescript(self, script: str, /) -> psycopg.Cursor[Any]:
        self._tables.update(table_keys(script))
        return self.conn.execute(schema_sql(script))

    def close(self) -> None:
        self.conn.close()

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - not a sequence
        raise TypeError("PgDb is not iterable")


def _param(value: Any) -> Any:
    """SQLite stores a bool as an int, and so must a BIGINT column."""
    return int(value) if isinstance(value, bool) else value


def connect(
    url: str, sqlite_schema: str, setup: Callable[[PgDb], None], *, readonly: bool = False
) -> PgDb:
    """A connection to the node's PostgreSQL database at `url`. Unless `readonly`, the
    schema is created and `setup` (the schema version's check and migrations) run under an
    advisory lock. Raises `psycopg.OperationalError` when the server cannot be reached."""
    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    db = PgDb(conn, sqlite_schema)
    if readonly:
        conn.execute("SET default_transaction_read_only = on")
        return db
    conn.execute("SET client_min_messages = warning")  # no NOTICE per existing table
    conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
    try:
        conn.execute(schema_sql(sqlite_schema))
        setup(db)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    return db
