#!/usr/bin/env python3
"""Import cycles among am's own modules, read from the source (nothing is imported).

Prints each cycle (a strongly connected group of modules) twice over: counting every import,
and counting only those at a module's top level (a cycle hidden by a lazy import shows only in
the first). Exits 1 when a cycle exists that is not made of --allow'ed modules alone (a known
one, still to be broken), so ``make lint`` keeps new ones out.

    scripts/import_cycles.py [--allow MOD,MOD...] [PACKAGE_DIR]
"""

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(pkg: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module under PKG."""
    found = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str], top_level: bool) -> set[str]:
    """The modules of KNOWN that module NAME (at PATH) imports."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level else ast.walk(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    # importing a.b.c runs a/__init__ and a/b/__init__ too; am/__init__ imports nothing
    return {m for m in found if m in known and m != name and m != name.split(".")[0]}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", nargs="?", default=str(ROOT / "am"))
    ap.add_argument("--allow", default="", help="comma-separated modules of a known cycle")
    args = ap.parse_args()
    allowed = {m for m in args.allow.split(",") if m}
    found = modules(Path(args.package))
    known = set(found)
    status = 0
    for label, top in (("every import", False), ("top-level imports only", True)):
        graph = {m: imports(m, p, known, top) for m, p in found.items()}
        groups = cycles(graph)
        print(f"{label}: {len(groups)} cycle(s)")
        for group in groups:
            members = set(group)
            edges = sorted(f"{a} -> {b}" for a in group for b in graph[a] & members)
            print(f"  {', '.join(group)}")
            for e in edges:
                print(f"      {e}")
        new = [g for g in groups if not set(g) <= allowed]
        for group in new:
            print(f"  not allowed: {', '.join(group)}")
        status |= bool(new)
    return status


if __name__ == "__main__":
    sys.exit(main())
