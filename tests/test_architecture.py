"""Imports point one way (ARCHITECTURE.md): each top-level package imports only the packages
below it, so there are no cycles; ``kb`` never imports ``corpus``; ``apps`` never import
``eval``, ``corpus``, ``train``, ``serve`` or ``cli``. Function-local (lazy) imports count too."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "secfoundry"

# package -> the packages it may import (besides itself). cli may import everything.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "sources": {"core"},
    "kb": {"core", "sources"},
    "models": {"core"},
    "eval": {"core", "models"},
    "corpus": {"core", "sources", "models", "eval"},  # eval: benchmark questions for decontamination
    "train": {"core", "models", "corpus"},  # corpus: the packed-shard format it reads
    "experiment": {"core", "sources", "models", "eval", "corpus", "train"},
    "apps": {"core", "sources", "kb", "models"},
    "serve": {"core", "sources", "kb", "models", "apps"},
    "cli": {"*"},
}


def _packages(src: Path = SRC) -> set[str]:
    return {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def import_edges(src: Path = SRC) -> dict[str, dict[str, list[str]]]:
    """{importer package: {imported package: [files]}} over every module under src/secfoundry."""
    SRC, pkgs = src, _packages(src)
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for f in SRC.rglob("*.py"):
        rel = f.relative_to(SRC).parts
        if len(rel) < 2:
            continue  # secfoundry/__init__.py, __main__.py, compatibility shims at the top
        here = rel[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                names = [".".join(["secfoundry", *base, *([node.module] if node.module else [])])]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.module != "secfoundry" else [f"secfoundry.{a.name}" for a in node.names]
            for n in names:
                parts = n.split(".")
                if parts[0] == "secfoundry" and len(parts) > 1 and parts[1] in pkgs and parts[1] != here:
                    edges[here][parts[1]].append(str(f.relative_to(SRC.parent)))
    return edges


def test_every_package_has_a_place():
    missing = _packages() - set(ALLOWED)
    assert not missing, f"new top-level package(s) {missing}: add them to ALLOWED here and to ARCHITECTURE.md"


def test_imports_point_one_way():
    bad = []
    for src, targets in import_edges().items():
        allowed = ALLOWED.get(src, set())
        if "*" in allowed:
            continue
        for tgt, files in targets.items():
            if tgt not in allowed:
                bad.append(f"{src} -> {tgt} ({', '.join(sorted(set(files))[:3])})")
    assert not bad, "imports against the layering in ARCHITECTURE.md:\n" + "\n".join(sorted(bad))


def test_named_rules():
    edges = import_edges()
    assert "corpus" not in edges.get("kb", {})
    assert not {"eval", "corpus", "train", "serve", "cli", "experiment"} & set(edges.get("apps", {}))
    assert not {"apps", "eval", "cli"} & set(edges.get("models", {}))


def test_no_cycles_between_packages():
    edges = {s: set(t) for s, t in import_edges().items()}
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> list[str] | None:
        state[n] = 1
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return path + [n, m]
            if m not in state and (cyc := visit(m, path + [n])):
                return cyc
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            cyc = visit(n, [])
            assert cyc is None, "import cycle: " + " -> ".join(cyc[cyc.index(cyc[-1]):])


def test_architecture_doc_is_short_and_names_every_package():
    doc = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert len(doc.splitlines()) <= 150
    for p in _packages():
        assert f"{p}/" in doc, f"ARCHITECTURE.md does not place {p}/"


def test_checker_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "secfoundry"
    for name, body in {"kb/__init__.py": "", "kb/x.py": "def f():\n    from secfoundry.corpus import y\n",
                       "corpus/__init__.py": "", "corpus/y.py": "from ..kb import x\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(body)
    e = import_edges(pkg)
    assert set(e["kb"]) == {"corpus"} and set(e["corpus"]) == {"kb"}
