"""Checks of `schema --infer`'s SQL, run by tests/it/views.rs with the test venv's Python.

  views.py duckdb SQL_FILE BASE [INSTANT ...]   run the DuckDB script, check every typed column
                                                against the JSON it came from, print JSON:
                                                the views' columns, <base>_latest's items and
                                                <base>_as_of(INSTANT)'s items, the check's counts
  views.py athena SQL_FILE [DUCKDB_SQL_FILE BASE [INSTANT ...]]
                                                parse every statement with sqlglot: the Glue DDL
                                                as Hive, the views and the template as Trino;
                                                exit 1 on any error or unparsed statement; with
                                                the DuckDB script, also run the Athena SQL
                                                translated to DuckDB and check it the same way

The typed-column check decodes each image independently (json, base64, decimal) and compares
with what DuckDB computed; it learns which column holds which attribute from the DDL's column
comments (`--   "attr" TAG -> "column" and "old column", TYPE`), so those are checked too.
"""

import base64
import json
import re
import sys
from decimal import Decimal

NAME = r'"(?:[^"\\]|\\.)*"'
COLUMN_LINE = re.compile(
    rf"^--   ({NAME}) ([A-Z]+) -> ({NAME})(?: and ({NAME}))?, (.+?)( \(key, from `keys`\))?$"
)


def columns(sql):
    """[attribute, tag, column, old column or None, from keys, SQL type as commented] per column."""
    out = []
    for line in sql.splitlines():
        m = COLUMN_LINE.match(line)
        if m:
            attr, tag, col, old, sql_type, key = m.groups()
            out.append([json.loads(attr), tag, json.loads(col), json.loads(old) if old else None, bool(key), sql_type])
    return out


def scalar(tag, decimal, value):
    if tag == "S":
        return value
    if tag == "N":
        return Decimal(value) if decimal else value
    if tag == "B":
        return base64.b64decode(value)
    if tag == "BOOL":
        return value
    if tag == "NULL":
        return True
    raise ValueError(tag)


def expected(tag, sql_type, attr_value):
    """What the typed column should hold for the attribute value ({"S": ...} or None); maps and
    lists of DynamoDB JSON elements as parsed JSON."""
    if attr_value is None or tag not in attr_value:
        return None
    v = attr_value[tag]
    decimal = "decimal" in sql_type.lower()
    if tag in ("S", "N", "B", "BOOL", "NULL"):
        return scalar(tag, decimal, v)
    if tag == "M":
        return v
    if tag in ("SS", "NS", "BS"):
        element = {"SS": "S", "NS": "N", "BS": "B"}[tag]
        return [scalar(element, decimal, x) for x in v]
    if tag == "L":
        if "json" in sql_type.lower():
            return v
        return [scalar(next(iter(e)), decimal, next(iter(e.values()))) for e in v]
    raise ValueError(tag)


def same(tag, sql_type, want, got):
    if want is None or got is None:
        return want is None and got is None
    if tag == "M":
        return json.loads(got) == want
    if tag == "L" and "json" in sql_type.lower():
        return [json.loads(e) for e in got] == want
    if isinstance(want, list):
        return len(want) == len(got) and all(w == g and type(w) is type(g) for w, g in zip(want, got))
    return want == got and type(want) is type(got)


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def check_typed(con, base, mapping):
    """Every typed column of every row of <base>_changes_typed against its own decoding of the
    JSON: (values compared, non-null values, mismatches)."""
    wanted = ["event_id", "keys", "new_image", "old_image"]
    wanted += [c for m in mapping for c in (m[2], m[3]) if c is not None]
    cur = con.execute(f"SELECT {', '.join(map(quote, wanted))} FROM {quote(base + '_changes_typed')}")
    names = [d[0] for d in cur.description]
    checked, values, mismatches = 0, 0, []
    for row in cur.fetchall():
        r = dict(zip(names, row))
        images = {
            "keys": json.loads(r["keys"]),
            "new": json.loads(r["new_image"]) if r["new_image"] is not None else {},
            "old": json.loads(r["old_image"]) if r["old_image"] is not None else {},
        }
        for attr, tag, col, old, key, sql_type in mapping:
            for image, column in [("keys", col)] if key else [("new", col), ("old", old)]:
                want = expected(tag, sql_type, images[image].get(attr))
                got = r[column]
                checked += 1
                values += want is not None
                if not same(tag, sql_type, want, got):
                    mismatches.append([r["event_id"], attr, tag, column, sql_type, repr(want)[:200], repr(got)[:200]])
    return checked, values, mismatches


def duckdb_check(sql_file, base, instants):
    import duckdb

    sql = open(sql_file, encoding="utf-8").read()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(sql)
    described = {}
    for view in (f"{base}_changes_typed", f"{base}_latest"):
        described[view] = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {quote(view)}").fetchall()]
    mapping = columns(sql)
    checked, values, mismatches = check_typed(con, base, mapping)
    latest = dict(con.execute(f"SELECT keys, item FROM {quote(base + '_latest')}").fetchall())
    as_of = {}
    for t in instants:
        as_of[t] = dict(con.execute(f"SELECT keys, item FROM {quote(base + '_as_of')}('{t}')").fetchall())
    print(json.dumps({
        "columns": described,
        "mapping": mapping,
        "checked": checked,
        "values": values,
        "mismatches": mismatches[:20],
        "mismatch_count": len(mismatches),
        "latest": latest,
        "as_of": as_of,
    }))


def statements(sql):
    """Splits a script at `;` outside quotes ('', "", ``) and comments."""
    out, cur, i, quote = [], [], 0, None
    while i < len(sql):
        c = sql[i]
        if quote:
            cur.append(c)
            if c == quote:
                if i + 1 < len(sql) and sql[i + 1] == quote:
                    cur.append(sql[i + 1])
                    i += 1
                else:
                    quote = None
        elif c in "'\"`":
            quote = c
            cur.append(c)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end
            continue
        elif c == ";":
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    rest = "".join(cur).strip()
    if rest:
        out.append(rest)
    return [s for s in out if s]


def athena_check(sql_file, duckdb_file=None, base=None, instants=()):
    """Parses every statement. With a DuckDB script: also runs the Athena views and template,
    translated by sqlglot from Trino's dialect to DuckDB's, over the DuckDB script's raw view, and
    checks them as the DuckDB views are checked (a check of the Athena SQL's logic; Athena's own
    functions are not reachable here)."""
    import sqlglot
    from sqlglot import exp

    sql = open(sql_file, encoding="utf-8").read()
    kinds, trino = [], []
    for stmt in statements(sql):
        dialect = "hive" if stmt.upper().startswith("CREATE EXTERNAL TABLE") else "trino"
        tree = sqlglot.parse_one(stmt, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
        if isinstance(tree, exp.Command):
            sys.exit(f"{dialect} did not parse, fell back to a command: {stmt[:300]}")
        kinds.append([dialect, type(tree).__name__, tree.sql(dialect=dialect)[:60]])
        if dialect == "trino":
            trino.append(stmt)
    result = {"statements": kinds}
    if duckdb_file:
        import duckdb

        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        raw = f"{base}_changes"
        for stmt in statements(open(duckdb_file, encoding="utf-8").read()):
            if stmt.startswith(f'CREATE OR REPLACE VIEW "{raw}" AS'):
                con.execute(stmt)
        *views, template = trino
        for stmt in views:
            con.execute(sqlglot.transpile(stmt, read="trino", write="duckdb")[0])
        mapping = columns(sql)
        checked, values, mismatches = check_typed(con, base, mapping)
        latest = dict(con.execute(f"SELECT keys, item FROM {quote(base + '_latest')}").fetchall())
        first, rest = template.split("\n", 1)
        as_of = {}
        for t in instants:
            # RFC 3339 UTC instant -> the template's TIMESTAMP literal, in its first line.
            literal = t.replace("T", " ").replace("Z", "")
            line = re.sub(r"TIMESTAMP '[^']*'", f"TIMESTAMP '{literal}'", first)
            query = sqlglot.transpile(line + "\n" + rest, read="trino", write="duckdb")[0]
            as_of[t] = dict(con.execute(f"SELECT keys, item FROM ({query})").fetchall())
        result.update({
            "checked": checked,
            "values": values,
            "mismatches": mismatches[:20],
            "mismatch_count": len(mismatches),
            "latest": latest,
            "as_of": as_of,
        })
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "duckdb":
        duckdb_check(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "athena":
        athena_check(sys.argv[2], *(sys.argv[3:5] or [None, None]), sys.argv[5:])
    else:
        sys.exit(__doc__)
