#!/usr/bin/env python
"""How the house reads: the figures issue 14 ("the house") asks for, counted from the notebooks and the package.

- exported cells: how many, their lines (the longest, with its notebook), and the definitions (top-level `def` and
  `class`) per exported cell: a reader sees one idea a cell when most cells hold one definition;
- functions: the longest (methods included), and how many exceed 40 lines;
- the import graph between the package's modules (imports inside functions included), and its cycles
  (strongly connected components of more than one module).

    .venv/bin/python bench/house.py                    # prints a markdown report, writes bench/results/house.md
    .venv/bin/python bench/house.py --before c3196f3   # the same figures at an earlier commit, side by side
"""
import argparse, ast, json, subprocess, sys, tarfile, tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE = "mlops_nb"
LONG_FUNCTION = 40  # lines


def exported_cells(root: Path = ROOT) -> list[dict]:
    "Every `#| export` cell of the numbered notebooks: notebook, cell id, lines, definitions."
    out = []
    for nb in sorted((root / "nbs").glob("[0-9]*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            src = "".join(cell["source"])
            if cell["cell_type"] != "code" or not src.lstrip().startswith(("#| export", "#|export")): continue
            body = ast.parse(src).body
            defs = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in body)
            out.append({"notebook": nb.name, "id": cell.get("id"), "lines": len(src.splitlines()), "definitions": defs})
    return out


def functions(root: Path = ROOT) -> list[dict]:
    "Every function and method of the package: module, name, lines."
    out = []
    for f in sorted((root / PACKAGE).glob("*.py")):
        if f.name.startswith("_"): continue
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append({"module": f.stem, "name": n.name, "lines": n.end_lineno - n.lineno + 1})
    return out


def import_graph(root: Path = ROOT) -> dict:
    "{module: {modules of the package it imports}}, imports inside functions included."
    mods = {f.stem for f in (root / PACKAGE).glob("*.py") if not f.name.startswith("_")}
    graph = {}
    for m in sorted(mods):
        deps = set()
        for n in ast.walk(ast.parse((root / PACKAGE / f"{m}.py").read_text())):
            if isinstance(n, ast.ImportFrom):
                name = n.module or ""
                if n.level == 1: deps.add(name.split(".")[0]) if name else deps.update(a.name for a in n.names)
                elif name.startswith(f"{PACKAGE}."): deps.add(name.split(".")[1])
                elif name == PACKAGE: deps.update(a.name for a in n.names)
            elif isinstance(n, ast.Import):
                deps.update(a.name.split(".")[1] for a in n.names if a.name.startswith(f"{PACKAGE}."))
        graph[m] = (deps & mods) - {m}
    return graph


def cycles(graph: dict) -> list[list[str]]:
    "The strongly connected components of more than one module (Tarjan's algorithm)."
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in sorted(graph[v]):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index: visit(v)
    return out


def figures(root: Path = ROOT) -> dict:
    cells, funcs, graph = exported_cells(root), functions(root), import_graph(root)
    longest_cell = max(cells, key=lambda c: c["lines"])
    longest_fn = max(funcs, key=lambda f: f["lines"])
    per_cell = Counter(min(c["definitions"], 4) for c in cells)
    return {"exported_cells": len(cells), "longest_cell": longest_cell,
            "definitions_per_cell": {("4+" if k == 4 else str(k)): per_cell[k] for k in sorted(per_cell)},
            "mean_definitions_per_cell": round(sum(c["definitions"] for c in cells) / len(cells), 2),
            "functions": len(funcs), "longest_function": longest_fn,
            "functions_over_40_lines": sum(f["lines"] > LONG_FUNCTION for f in funcs),
            "modules": {m: sorted(d) for m, d in graph.items()}, "cycles": cycles(graph)}


def rows(f: dict) -> dict:
    "{figure: its value in words}."
    c, fn = f["longest_cell"], f["longest_function"]
    return {"exported cells": str(f["exported_cells"]),
            "longest exported cell": f"{c['lines']} lines ({c['notebook']}, cell {c['id']})",
            "definitions per exported cell (cells with 0 / 1 / 2 / 3 / 4+)":
                " / ".join(str(f["definitions_per_cell"].get(k, 0)) for k in ("0", "1", "2", "3", "4+")) + f" (mean {f['mean_definitions_per_cell']})",
            "functions and methods": str(f["functions"]),
            "longest function": f"{fn['lines']} lines (`{fn['module']}.{fn['name']}`)",
            f"functions over {LONG_FUNCTION} lines": str(f["functions_over_40_lines"]),
            "import cycles between modules": str(len(f["cycles"])) + (": " + "; ".join(" ↔ ".join(c) for c in f["cycles"]) if f["cycles"] else "")}


def report(f: dict, before: Optional[dict] = None, commit: str = "") -> str:
    now = rows(f)
    if before is None: table = "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in now.items())
    else:
        then = rows(before)
        table = (f"| figure | before ({commit}) | now |\n|---|---|---|\n" + "\n".join(f"| {k} | {then[k]} | {v} |" for k, v in now.items()))
    graph = "\n".join(f"- `{m}` → {', '.join(f'`{d}`' for d in deps) or 'nothing of the package'}" for m, deps in f["modules"].items())
    return table + "\n\nImports between modules now (inside functions included):\n\n" + graph + "\n"


def figures_at(commit: str) -> dict:
    "The figures of the notebooks and package at `commit` (read from git, the work tree untouched)."
    with tempfile.TemporaryDirectory() as d:
        archive = subprocess.run(["git", "archive", commit, "nbs", PACKAGE], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as t: t.extractall(d, filter="data")
        return figures(Path(d))


def main() -> int:
    p = argparse.ArgumentParser(description="The house's figures (issue 14), counted from the notebooks and the package.")
    p.add_argument("--before", metavar="COMMIT", help="also count them at this earlier commit, side by side")
    args = p.parse_args()
    md = report(figures(), figures_at(args.before) if args.before else None, args.before or "")
    print(md)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "`.venv/bin/python bench/house.py" + (f" --before {args.before}" if args.before else "") + "`"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "house.md").write_text(f"# The house, counted\n\n{command}, {stamp}.\n\n{md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
