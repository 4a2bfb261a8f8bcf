"""House rules checked on the source: no private name imported across modules, no SQL outside ``storage/``, core
never imports dagster, modules stay readable in one sitting."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cryptotracker_assets", "resources", "sensors", "models")
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(OR\s+REPLACE\s+)?"
                 r"(TEMP\s+)?TABLE|ALTER\s+TABLE|DROP\s+TABLE|BEGIN(\s+TRANSACTION)?\s*$|COMMIT\s*$|ROLLBACK\s*$)",
                 re.S)
MAX_LINES = 700


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES if (ROOT / pkg).exists() for p in (ROOT / pkg).rglob("*.py"))


def test_the_rules_see_the_code():
    assert len(sources()) > 60


def test_no_private_name_is_imported_across_modules():
    bad = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names]
                mod = node.module or ""
                private = [n for n in names if n.startswith("_") and not n.startswith("__")]
                private += [p for p in mod.split(".") if p.startswith("_") and not p.startswith("__")]
                if private:
                    bad.append(f"{path.relative_to(ROOT)}: from {'.' * node.level}{mod} import {private}")
            elif isinstance(node, ast.Import):
                bad += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names
                        if any(p.startswith("_") and not p.startswith("__") for p in a.name.split("."))]
    assert not bad, "\n".join(bad)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            out.append((node.lineno, "".join(v.value if isinstance(v, ast.Constant) else " x " for v in node.values)))
    return out


def test_sql_lives_in_storage_only():
    bad = []
    for path in sources():
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("cryptotracker_assets", "storage"):
            continue
        tree = ast.parse(path.read_text())
        doc_nodes = {id(n.body[0].value) for n in ast.walk(tree)
                     if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                     and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "execute", "executemany", "sql") and not rel.parts[0] == "models":
                bad.append(f"{rel}:{node.lineno}: .{node.func.attr}(...)")
        for lineno, text in _strings(tree):
            if SQL.search(text.strip()) and not any(id(n) in doc_nodes for n in ast.walk(tree)
                                                    if isinstance(n, ast.Constant) and n.value == text):
                bad.append(f"{rel}:{lineno}: {text.strip()[:60]!r}")
    assert not bad, "\n".join(bad)


def test_the_checker_finds_sql_and_private_imports():
    tree = ast.parse('q = "SELECT a FROM t"\nf"DELETE FROM {t} WHERE x"\nconn.execute("BEGIN")\n')
    found = {line for line, t in _strings(tree) if SQL.search(t.strip())}
    assert found == {1, 2, 3}
    assert SQL.search("Select the best strategy from the table") is None


def test_modules_stay_readable_in_one_sitting():
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
