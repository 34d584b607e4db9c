"""The query guard: what a user's statement (``inferwatch sql``, ``POST /v1/query``, saved queries)
may touch, decided on the engine's own parse of it — never on the text.

How a statement is checked:

1. The engine parses it: ``SELECT parseQueryToJSON({q:String})`` (the statement travels as a query
   parameter, so nothing of it is executed; more than one statement is a syntax error there). The
   result is the statement's AST as JSON.
2. The AST is walked with allow-lists: statement kinds (``SELECT`` with ``UNION``/``INTERSECT``/
   ``EXCEPT``, ``EXPLAIN`` of such, ``SHOW TABLES``/``SHOW DATABASES``/``SHOW COLUMNS``, and
   ``DESCRIBE <table>``), node types, the keys of every statement-level node, tables (this store's
   database, and the ``system`` tables needed to explore a schema), and table functions that touch
   neither the file system, the network, processes nor other databases (:data:`ALLOWED_TABLE_FUNCTIONS`).
   ``INTO OUTFILE``, ``FORMAT`` and ``SETTINGS`` clauses are refused wherever they appear. Ordinary
   functions are checked against the engine's catalogue (``system.functions``): unknown names,
   user-defined functions and those that read files, dictionaries, the network, models or the
   process (:data:`REFUSED_FUNCTION_CATEGORIES`, :data:`REFUSED_FUNCTIONS`) are refused.
3. What runs is the statement rebuilt from the checked AST (``formatQueryFromJSON``), so the engine
   executes exactly what was checked, not the text it came from.

``DESCRIBE`` has no JSON form in the engine; it is checked on ``EXPLAIN AST`` of its canonical text
(``formatQuery``, which also refuses a second statement) and must be exactly ``DESCRIBE <table>``.

Everything refused raises :class:`~inferwatch.store.errors.QueryRefused` naming what was refused.
The guard is one layer: limits are enforced by the engine on every query (:func:`engine_limits`),
and on a ClickHouse server the query user's settings profile pins them (see ``docs/sql.md``).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from inferwatch.store.errors import QueryRefused, StoreError

Engine = Callable[[str, Mapping[str, str]], list[tuple[Any, ...]]]
"""Runs one internal statement (with ``{name:String}`` parameters) on the read-only session; returns rows."""

# Table functions that compute rows from their arguments alone. Everything else the engine lists in
# system.table_functions (file, url, s3, remote, mysql, executable, python, merge, input, …) is refused.
TABLE_FUNCTIONS_ALLOWED = (
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series", "generateSeries",
    "primes", "generateRandom", "view",
)
ALLOWED_TABLE_FUNCTIONS = frozenset(n.lower() for n in TABLE_FUNCTIONS_ALLOWED)
""":data:`TABLE_FUNCTIONS_ALLOWED` lower-cased: names are compared case-insensitively (a name that
differs only in case resolves to the same function or to none)."""

# system tables a user needs to explore the schema (and `inferwatch status` to size the tables).
ALLOWED_SYSTEM_TABLES = frozenset({
    "one", "tables", "columns", "databases", "parts", "functions", "table_functions",
    "aggregate_function_combinators", "data_type_families", "time_zones",
})

ALLOWED_EXPLAIN_KINDS = frozenset({
    "EXPLAIN", "EXPLAIN AST", "EXPLAIN SYNTAX", "EXPLAIN QUERY TREE", "EXPLAIN PLAN", "EXPLAIN PIPELINE",
    "EXPLAIN ESTIMATE",
})
# EXPLAIN's own options (not engine settings).
ALLOWED_EXPLAIN_OPTIONS = frozenset({
    "header", "description", "actions", "indexes", "projections", "sorting", "json", "keep_logical_steps",
    "distributed", "graph", "compact", "oneline", "run_passes", "dump_passes", "passes", "dump_tree",
    "dump_ast", "optimize", "pretty", "input_headers", "query_tree_passes",
})

# Function categories of system.functions whose members read something besides the query's rows.
REFUSED_FUNCTION_CATEGORIES = frozenset({
    "Dictionary", "Embedded Dictionary", "Introspection", "AI", "Machine Learning",
})
# Named functions (categories "Other"/none) that read files, other tables or databases, the server's
# configuration, certificates, file systems or ZooKeeper/Keeper, or write state.
REFUSED_FUNCTIONS = frozenset(n.lower() for n in (
    "file", "joinGet", "joinGetOrNull", "hasColumnInTable", "getMaxTableNameLengthForDatabase",
    "catboostEvaluate", "modelEvaluate", "getClientHTTPHeader", "showCertificate", "generateSerialID",
    "filesystemAvailable", "filesystemCapacity", "filesystemUnreserved", "getServerSetting",
    "getMergeTreeSetting", "zookeeperSessionUptime", "getMacro", "currentRequestURL", "__getScalar",
    "globalVariable", "getOSKernelVersion", "buildId", "currentHandler",
))
# Function names the parser produces that system.functions does not list.
_AST_FUNCTIONS = frozenset({"lambda", "exists", "grouping", "untuple", "tuple", "array"})

_IN_FUNCTIONS = frozenset({
    "in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin",
    "inignoreset", "notinignoreset", "globalinignoreset", "globalnotinignoreset",
})

_OUTFILE_FLAGS = frozenset({"is_outfile_append", "is_outfile_truncate", "is_into_outfile_with_stdout"})
_QUERY_END = frozenset({"alias"}) | _OUTFILE_FLAGS
# The keys every statement-level node may carry. A key not listed (a clause this code has not
# reviewed) refuses the statement.
_ALLOWED_KEYS: dict[str, frozenset[str]] = {
    "SelectWithUnionQuery": frozenset({"union_mode", "list_of_modes", "list_of_selects"}) | _QUERY_END,
    "SelectIntersectExceptQuery": frozenset({"children", "final_operator"}) | _QUERY_END,
    "SelectQuery": frozenset({
        "with", "recursive_with", "select", "distinct", "limit_with_ties", "tables", "prewhere", "where",
        "group_by", "group_by_all", "group_by_with_totals", "group_by_with_rollup", "group_by_with_cube",
        "group_by_with_grouping_sets", "group_by_with_constant_keys", "having", "window", "qualify",
        "order_by", "order_by_all", "limit_by_offset", "limit_by_length", "limit_by", "limit_offset",
        "limit_length", "interpolate", "alias",
    }),
    "ExplainQuery": frozenset({"kind", "query", "settings"}) | _QUERY_END,
    "ShowTablesQuery": frozenset({
        "databases", "full", "from", "like", "not_like", "case_insensitive_like", "limit_length",
    }) | _QUERY_END,
    "ShowColumnsQuery": frozenset({
        "database", "table", "full", "extended", "like", "not_like", "case_insensitive_like", "limit_length",
    }) | _QUERY_END,
    "TableExpression": frozenset({
        "database_and_table_name", "table_function", "subquery", "final", "sample_size", "sample_offset",
    }),
    "TablesInSelectQueryElement": frozenset({"table_expression", "table_join", "array_join"}),
}
# Expression-level node types: their children are walked, their keys are structure only.
_EXPRESSION_NODES = frozenset({
    "ExpressionList", "Function", "Identifier", "Literal", "Asterisk", "QualifiedAsterisk", "Subquery",
    "WithElement", "OrderByElement", "WindowDefinition", "WindowListElement", "InterpolateElement",
    "SampleRatio", "TableJoin", "ArrayJoin", "TablesInSelectQuery", "QueryParameter", "TableIdentifier",
    "ColumnsRegexpMatcher", "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher",
    "QualifiedColumnsListMatcher", "ColumnsTransformerList", "ColumnsApplyTransformer",
    "ColumnsExceptTransformer", "ColumnsReplaceTransformer", "ColumnsReplaceTransformerReplacement",
})
_STATEMENT_ROOTS = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "ExplainQuery", "ShowTablesQuery", "ShowColumnsQuery",
})
_SELECT_NODES = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery"})
_CLAUSE_NAMES = {
    "out_file": "INTO OUTFILE", "format_ast": "FORMAT", "format": "FORMAT", "settings": "SETTINGS",
    "compression": "INTO OUTFILE … COMPRESSION", "compression_level": "INTO OUTFILE … COMPRESSION",
}
_NO_JSON = re.compile(r"AST node of type '([A-Za-z]+)")
_NOT_SUPPORTED = re.compile(r"DB::Exception: ([A-Za-z]+)\b[^:]*not supported by parseQueryToJSON")
_DESCRIBE_AST = re.compile(
    r"DescribeQuery \(children 1\)\n TableExpression \(children 1\)\n  TableIdentifier ([^\s()]+)\n?"
)


class QuerySettings(BaseSettings):
    """Engine-side limits of user queries and the ClickHouse server's query user
    (``INFERWATCH_QUERY_MAX_MEMORY_BYTES``, ``INFERWATCH_QUERY_MAX_ROWS_TO_READ``,
    ``INFERWATCH_CLICKHOUSE_QUERY_USER``, ``INFERWATCH_CLICKHOUSE_QUERY_PASSWORD``)."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_", frozen=True, extra="ignore")

    query_max_memory_bytes: int = Field(2 << 30, ge=1 << 20, description="max_memory_usage of one user query.")
    query_max_rows_to_read: int = Field(2_000_000_000, ge=1, description="max_rows_to_read of one user query.")
    clickhouse_query_user: str = Field("inferwatch_query", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                       description="Server only: the read-only user `inferwatch migrate` creates.")
    clickhouse_query_password: str | None = Field(
        None, description="Server only: its password; when unset no query user is created and queries "
                          "run as the main user with readonly=2 and the same limits.")


MAX_ROWS_CAP = 1_000_000
"""The most rows one user query may return (``max_rows``)."""
MAX_TIMEOUT_S = 600.0
"""The longest one user query may run (``timeout_s``)."""

PROTECTED_SETTINGS = (
    "readonly", "limit", "max_result_rows", "result_overflow_mode", "max_execution_time",
    "timeout_overflow_mode", "max_rows_to_read", "read_overflow_mode", "max_memory_usage",
)


def engine_limits(max_rows: int, timeout_s: float, options: QuerySettings | None = None) -> dict[str, Any]:
    """The settings every user query runs under, enforced by the engine while it reads.

    ``limit`` cuts the outermost result at ``max_rows + 1`` rows (one extra row tells the caller the
    result was cut) inside the pipeline; ``max_result_rows`` with ``break`` stops reading there too.
    """
    o = options or QuerySettings()
    return {
        "limit": max_rows + 1,
        "max_result_rows": max_rows + 1,
        "result_overflow_mode": "break",
        "max_execution_time": max(1, int(round(timeout_s))),
        "timeout_overflow_mode": "throw",
        "max_rows_to_read": o.query_max_rows_to_read,
        "read_overflow_mode": "throw",
        "max_memory_usage": o.query_max_memory_bytes,
    }


def escape_param(value: str) -> str:
    """A String query parameter as the engine reads it (escaped: tabs, newlines, backslashes)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


@dataclass(frozen=True)
class FunctionCatalog:
    """The engine's functions (``system.functions``) and which of them a user query may call."""

    exact: Mapping[str, str]           # name -> canonical name (alias_to or itself)
    case_insensitive: Mapping[str, str]  # lower-cased name -> canonical name
    aggregates: frozenset[str]
    refused: Mapping[str, str]         # canonical name -> why
    combinators: tuple[str, ...]

    @classmethod
    def from_rows(cls, functions: Iterable[tuple[Any, ...]], combinators: Iterable[str]) -> FunctionCatalog:
        """From rows ``(name, origin, alias_to, is_aggregate, case_insensitive, categories)``."""
        exact: dict[str, str] = {}
        ci: dict[str, str] = {}
        aggs: set[str] = set()
        refused: dict[str, str] = {}
        for name, origin, alias_to, is_agg, case_ins, categories in functions:
            name, canon = str(name), str(alias_to or name)
            exact[name] = canon
            if case_ins:
                ci[name.lower()] = canon
            if is_agg:
                aggs.update({name, canon})
            cats = {c.strip() for c in str(categories or "").split(",") if c.strip()}
            why = None
            if str(origin) != "System":
                why = "user-defined functions are not allowed"
            elif cats & REFUSED_FUNCTION_CATEGORIES:
                why = f"{', '.join(sorted(cats & REFUSED_FUNCTION_CATEGORIES))} functions read outside the query"
            elif name.lower() in REFUSED_FUNCTIONS or canon.lower() in REFUSED_FUNCTIONS:
                why = "it reads files, other tables, the server or the network"
            if why:
                refused[name] = why
                refused.setdefault(canon, why)
        return cls(exact, ci, frozenset(aggs), refused, tuple(sorted(combinators, key=len, reverse=True)))

    def _resolve(self, name: str) -> str | None:
        if name in self.exact:
            return self.exact[name]
        return self.case_insensitive.get(name.lower())

    def refusal(self, name: str) -> str | None:
        """Why ``name`` may not be called, or None when it may."""
        if name.lower() in REFUSED_FUNCTIONS:
            return "it reads files, other tables, the server or the network"
        canon = self._resolve(name)
        if canon is None:
            if name in _AST_FUNCTIONS:
                return None
            canon = self._strip_combinators(name)
            if canon is None:
                return "unknown function"
        return self.refused.get(canon) or self.refused.get(name)

    def _strip_combinators(self, name: str, depth: int = 0) -> str | None:
        """``countIf`` -> ``count``: an aggregate function with combinator suffixes."""
        if depth > 4:
            return None
        for c in self.combinators:
            if name.endswith(c) and len(name) > len(c):
                base = name[: -len(c)]
                canon = self._resolve(base)
                if canon is not None and (base in self.aggregates or canon in self.aggregates):
                    return canon
                inner = self._strip_combinators(base, depth + 1)
                if inner is not None:
                    return inner
        return None


CACHE_ENTRIES = 256
"""Accepted statements remembered by :meth:`SqlGuard.check` (the console, dashboards and reports send
the same texts again and again; a check costs two engine round trips, 10-60 ms measured)."""
CACHE_MAX_CHARS = 16_000
"""Longer statements are checked every time (bounds the cache's memory to a few MB)."""


class SqlGuard:
    """Checks user statements against one store's database; thread-safe (the catalogue loads once).

    The verdict depends only on the statement's text and the engine's catalogue, so an accepted
    statement is remembered (up to :data:`CACHE_ENTRIES`, least recently used out); refusals are not."""

    def __init__(self, engine: Engine, database: str) -> None:
        self._engine = engine
        self.database = database
        self._catalog: FunctionCatalog | None = None
        self._lock = threading.Lock()
        self._accepted: OrderedDict[str, str] = OrderedDict()

    # -- public -----------------------------------------------------------------------------
    def check(self, sql: str) -> str:
        """The statement to run for ``sql`` (rebuilt from its checked AST); raises
        :class:`QueryRefused` naming what was refused, or :class:`StoreError` when it does not parse."""
        if not sql.strip():
            raise QueryRefused("refused: an empty statement")
        with self._lock:
            hit = self._accepted.get(sql)
            if hit is not None:
                self._accepted.move_to_end(sql)
                return hit
        out = self._check(sql)
        if len(sql) <= CACHE_MAX_CHARS:
            with self._lock:
                self._accepted[sql] = out
                while len(self._accepted) > CACHE_ENTRIES:
                    self._accepted.popitem(last=False)
        return out

    def _check(self, sql: str) -> str:
        try:
            rows = self._engine("SELECT parseQueryToJSON({q:String})", {"q": escape_param(sql)})
        except StoreError as exc:
            msg = str(exc)
            m = _NO_JSON.search(msg)
            if m is not None:
                return self._check_without_json(sql, m.group(1))
            if "Multi-statements are not allowed" in msg:
                raise QueryRefused("refused: one statement at a time (found a second statement after ';')") from None
            w = _NOT_SUPPORTED.search(msg)
            if w is not None:  # INSERT with inline data and the like
                raise QueryRefused(f"refused: {w.group(1).upper()} statements are not allowed here "
                                   "(SELECT, EXPLAIN, SHOW TABLES/DATABASES/COLUMNS and DESCRIBE <table> are)") from None
            raise
        tree = json.loads(str(rows[0][0]))
        self._statement(tree)
        out = self._engine("SELECT formatQueryFromJSON({j:String})", {"j": escape_param(json.dumps(tree))})
        return str(out[0][0]).strip()

    @property
    def catalog(self) -> FunctionCatalog:
        """The engine's function catalogue (read once)."""
        with self._lock:
            if self._catalog is None:
                funcs = self._engine(
                    "SELECT name, toString(origin), alias_to, is_aggregate, case_insensitive, categories "
                    "FROM system.functions", {})
                combs = [str(r[0]) for r in self._engine("SELECT name FROM system.aggregate_function_combinators", {})]
                self._catalog = FunctionCatalog.from_rows(funcs, combs)
            return self._catalog

    # -- statements -------------------------------------------------------------------------
    def _check_without_json(self, sql: str, node: str) -> str:
        """Statements the engine cannot give as JSON: only ``DESCRIBE <table>`` is allowed."""
        kind = node.split("__", 1)[0]
        if kind != "DescribeQuery":
            raise QueryRefused(f"refused: {_kind_name(kind)} statements are not allowed here "
                               "(SELECT, EXPLAIN, SHOW TABLES/DATABASES/COLUMNS and DESCRIBE <table> are)")
        # formatQuery parses exactly one statement (a second one is a syntax error) and gives the
        # canonical text; EXPLAIN AST of that text must be the bare DESCRIBE of one table.
        canonical = str(self._engine("SELECT formatQuery({q:String})", {"q": escape_param(sql)})[0][0]).strip()
        ast = "\n".join(str(r[0]) for r in self._engine("EXPLAIN AST " + canonical, {}))
        m = _DESCRIBE_AST.fullmatch(ast.strip() + "\n")
        if m is None:
            raise QueryRefused("refused: only DESCRIBE <table> is allowed (no table function, subquery, "
                               "FORMAT, INTO OUTFILE or SETTINGS)")
        name = m.group(1)
        parts = name.split(".", 1) if "." in name else [name]
        self._table(parts)
        return canonical

    def _statement(self, node: Any) -> None:
        kind = _type(node)
        if kind not in _STATEMENT_ROOTS:
            raise QueryRefused(f"refused: {_kind_name(kind)} statements are not allowed here "
                               "(SELECT, EXPLAIN, SHOW TABLES/DATABASES/COLUMNS and DESCRIBE <table> are)")
        self._node(node)

    def _node(self, node: Any, parent_key: str = "") -> None:
        if isinstance(node, list):
            for n in node:
                self._node(n, parent_key)
            return
        if not isinstance(node, dict):
            return
        if "type" not in node:  # data (a literal's value), not a node: only nodes nested in it matter
            for value in node.values():
                self._node(value, parent_key)
            return
        kind = _type(node)
        if kind in _ALLOWED_KEYS:
            self._keys(node, kind)
        elif kind not in _EXPRESSION_NODES:
            if kind == "SetQuery":
                raise QueryRefused(f"refused: SETTINGS clauses are not allowed ({_setting_names(node)}); "
                                   "the limits of a query are the caller's max_rows and timeout_s")
            raise QueryRefused(f"refused: {kind} is not allowed in a query here")
        if kind == "ExplainQuery":
            self._explain(node)
            return
        if kind == "ShowTablesQuery":
            self._show_tables(node)
            return
        if kind == "ShowColumnsQuery":
            parts = [node["database"], node["table"]] if node.get("database") else [node.get("table", "")]
            self._table([str(p) for p in parts])
            return
        if kind == "TableExpression":
            self._table_expression(node)
            return
        if kind == "QueryParameter" and "identifier" in str(node.get("param_type", "")).lower():
            # {t:Identifier} names a table (or column) only at run time, out of the guard's sight.
            raise QueryRefused(f"refused: {{{node.get('name')}:Identifier}} parameters are not allowed "
                               "(a table named by a parameter is not checked); write the name in the query")
        if kind == "TableIdentifier":
            self._node(node.get("children"), "children")  # {db:Identifier}.{t:Identifier} parts first
            self._table(_parts(node))
        if kind == "Function":
            self._function(node)
        for key, value in node.items():
            if key != "type":
                self._node(value, key)

    def _keys(self, node: dict[str, Any], kind: str) -> None:
        allowed = _ALLOWED_KEYS[kind]
        for key, value in node.items():
            if key == "type":
                continue
            if key in _OUTFILE_FLAGS and value:
                raise QueryRefused("refused: INTO OUTFILE is not allowed (queries never write files)")
            if key == "settings" and kind == "ExplainQuery":
                continue
            if key not in allowed:
                clause = _CLAUSE_NAMES.get(key)
                if key == "settings" and isinstance(value, dict):
                    raise QueryRefused(f"refused: SETTINGS clauses are not allowed ({_setting_names(value)}); "
                                       "the limits of a query are the caller's max_rows and timeout_s")
                if clause:
                    raise QueryRefused(f"refused: {clause} clauses are not allowed here "
                                       "(results come back as JSON; queries never write files)")
                raise QueryRefused(f"refused: the {key!r} part of a {kind} is not allowed here")

    def _explain(self, node: dict[str, Any]) -> None:
        kind = str(node.get("kind", ""))
        if kind not in ALLOWED_EXPLAIN_KINDS:
            raise QueryRefused(f"refused: {kind} is not allowed (only {', '.join(sorted(ALLOWED_EXPLAIN_KINDS))})")
        opts = node.get("settings")
        if opts is not None:
            names = [str(c.get("name")) for c in opts.get("changes", [])]
            bad = [n for n in names if n not in ALLOWED_EXPLAIN_OPTIONS]
            if bad or set(opts) - {"type", "changes"}:
                raise QueryRefused(f"refused: EXPLAIN options {bad or names} are not allowed "
                                   f"(only {', '.join(sorted(ALLOWED_EXPLAIN_OPTIONS))})")
        if "query" not in node:
            raise QueryRefused("refused: EXPLAIN without a query")
        self._statement(node["query"])

    def _show_tables(self, node: dict[str, Any]) -> None:
        src = node.get("from")
        if src is not None:
            name = str(src.get("name", "")) if isinstance(src, dict) else str(src)
            if name not in (self.database, "system"):
                raise QueryRefused(f"refused: database {name!r} (only {self.database!r} and 'system')")
        if node.get("like") is not None and not isinstance(node.get("like"), str):
            raise QueryRefused("refused: SHOW … LIKE takes a string")
        lim = node.get("limit_length")
        if lim is not None:
            self._node(lim)

    def _table_expression(self, node: dict[str, Any]) -> None:
        for key, value in node.items():
            if key == "type":
                continue
            if key == "table_function":
                name = str(value.get("name", ""))
                if name.lower() not in ALLOWED_TABLE_FUNCTIONS:
                    raise QueryRefused(
                        f"refused: table function {name}() is not allowed (it may read files, the network, "
                        f"processes or other databases); allowed: {', '.join(TABLE_FUNCTIONS_ALLOWED)}")
                for k, v in value.items():
                    if k not in ("type", "name"):
                        self._node(v, k)
            else:
                self._node(value, key)

    def _function(self, node: dict[str, Any]) -> None:
        name = str(node.get("name", ""))
        why = self.catalog.refusal(name)
        if why:
            raise QueryRefused(f"refused: function {name}() is not allowed ({why})")
        if name.lower() in _IN_FUNCTIONS:
            args = (node.get("arguments") or {}).get("children") or []
            # `x IN db.table` reads a table named by a bare identifier.
            if len(args) == 2 and _type(args[1]) == "Identifier":
                self._table(_parts(args[1]))

    def _table(self, parts: list[str]) -> None:
        """Allowed: an unqualified name (a CTE or a table of the current database, which is this
        store's), ``<database>.<any>``, and ``system.<schema table>``."""
        if len(parts) == 1:
            return
        if len(parts) == 2:
            db, table = parts
            if db == self.database:
                return
            if db == "system" and table in ALLOWED_SYSTEM_TABLES:
                return
        raise QueryRefused(f"refused: table {'.'.join(parts)} is not allowed (only tables of {self.database!r} "
                           f"and system.{{{', '.join(sorted(ALLOWED_SYSTEM_TABLES))}}})")


def _type(node: Any) -> str:
    return str(node.get("type", "?")) if isinstance(node, dict) else type(node).__name__


def _parts(node: dict[str, Any]) -> list[str]:
    parts = node.get("name_parts")
    if isinstance(parts, list) and parts:
        return [str(p) for p in parts]
    return [str(node.get("name", ""))]


def _setting_names(node: dict[str, Any]) -> str:
    names = [str(c.get("name")) for c in node.get("changes", []) if isinstance(c, dict)]
    return ", ".join(names) or "SETTINGS"


def _kind_name(node_type: str) -> str:
    """``InsertQuery`` -> ``INSERT``; ``ShowCreateTableQuery`` -> ``SHOW CREATE TABLE``."""
    base = node_type.removesuffix("Query")
    words = re.findall(r"[A-Z][a-z]*|[a-z]+", base)
    return " ".join(w.upper() for w in words) or node_type
