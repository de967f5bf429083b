"""Package structure: imports go one way, files stay small, citations point inside the repo.

layers -> models -> (engine, analysis, deploy) -> tasks -> cli, with ``data`` beside
``models`` (it may use layers/models, never engine/tasks/cli) and ``atomic`` (file writing)
and ``machine`` (CPU identity) usable by all. A module may import its own package and any
lower rank.
"""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "spikevideoformer"
# analysis (energy of the deployed network) may use deploy, not the other way round
RANK = {"atomic": 0, "machine": 0, "layers": 1, "models": 2, "data": 2, "engine": 3, "deploy": 3,
        "analysis": 3.5, "tasks": 4, "cli": 5}
MAX_LINES = 400


def _package_of(parts: list[str]) -> str:
    return parts[0][:-3] if parts[0].endswith(".py") else parts[0]


def _imports(path: Path):
    yield from _imports_of(path.read_text(encoding="utf-8"), list(path.relative_to(PKG).parts))


def _imports_of(source: str, rel: list[str]):
    """``(line, top-level package)`` of every ``spikevideoformer`` import in ``source``, a
    module at ``PKG/<rel>``."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if not (node.module or "").startswith("spikevideoformer."):
                continue
            target = node.module.split(".")[1:]
        else:
            base = rel[:-1][: len(rel) - node.level] if node.level > 1 else rel[:-1]
            target = base + (node.module.split(".") if node.module else [a.name for a in node.names])
        if target:
            yield node.lineno, target[0]


def test_imports_go_one_way():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG).parts)
        if len(parts) == 1:  # top-level modules (__init__, atomic) are exempt
            continue
        src = _package_of(parts)
        for line, dst in _imports(path):
            if dst in RANK and src in RANK and dst != src and RANK[dst] >= RANK[src]:
                bad.append(f"{path.relative_to(PKG)}:{line} imports {dst} ({src} may not)")
    assert not bad, "\n".join(bad)


def test_the_check_sees_relative_and_absolute_imports():
    src = ("from ..cli.train import x\nfrom spikevideoformer.engine import y\n"
           "from . import neuron\nfrom .blocks import z\nimport os\n")
    assert [d for _, d in _imports_of(src, ["layers", "attention.py"])] == ["cli", "engine", "layers", "layers"]
    assert [d for _, d in _imports_of("from ... import atomic\n", ["tasks", "pose", "x.py"])] == ["atomic"]


def test_no_file_over_400_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_no_citation_of_files_outside_the_repository():
    hits = [str(p.relative_to(PKG)) for p in PKG.rglob("*") if p.is_file()
            and p.suffix in {".py", ".yaml"} and "SPEC §" in p.read_text(encoding="utf-8")]
    assert not hits, hits
