"""Every ```python block of the documentation (docs/**/*.md and README.md) runs.

The blocks of one page run in order in one namespace (a later block may use what an earlier one
defined), in a temporary working directory. A marker comment on the line before a block
changes what happens to it; the reason is required:

    <!-- docs-test: slow (reason) -->   runs only with the slow tests (``make test-all``)
    <!-- docs-test: skip (reason) -->   never runs (still compiled); reported as a skipped test

A marker that is not directly followed by a ```python block, or has no reason, fails the
collection check below, so no block is ignored without a word. Each skipped block is its own
skipped test item, named by page and line, with its reason (``pytest -rs`` lists them).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]

_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\w+)\s*(?:\((.*)\))?\s*-->\s*$")
MODES = ("slow", "skip")


@dataclass
class Block:
    page: str      # path relative to the repository root
    line: int      # 1-based line of the opening fence
    code: str
    mode: str      # "run", "slow" or "skip"
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


class MarkerError(ValueError):
    pass


def parse_blocks(text: str, page: str) -> list[Block]:
    """The ```python blocks of a markdown text with their docs-test mode."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending = None  # (mode, reason, line) of a marker waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            mode, reason = marker.group(1), (marker.group(2) or "").strip()
            if mode not in MODES:
                raise MarkerError(f"{page}:{i + 1}: unknown docs-test mode {mode!r} (use {MODES})")
            if not reason:
                raise MarkerError(f"{page}:{i + 1}: docs-test: {mode} needs a reason in parentheses")
            if pending:
                raise MarkerError(f"{page}:{pending[2]}: docs-test marker not followed by a python block")
            pending = (mode, reason, i + 1)
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            indent, lang = fence.group(1), fence.group(2).lower()
            end = i + 1
            while end < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[end]):
                end += 1
            if end == len(lines):
                raise MarkerError(f"{page}:{i + 1}: code block is not closed")
            if lang in ("python", "py", "python3"):
                body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1:end]]
                mode, reason = (pending[0], pending[1]) if pending else ("run", "")
                blocks.append(Block(page, i + 1, "\n".join(body) + "\n", mode, reason))
            elif pending:
                raise MarkerError(f"{page}:{pending[2]}: docs-test marker is followed by a "
                                  f"```{lang} block, not a python one")
            pending = None
            i = end + 1
            continue
        if pending and line.strip():
            raise MarkerError(f"{page}:{pending[2]}: docs-test marker not followed by a python block")
        i += 1
    if pending:
        raise MarkerError(f"{page}:{pending[2]}: docs-test marker not followed by a python block")
    return blocks


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _all_blocks() -> list[Block]:
    out: list[Block] = []
    for page in PAGES:
        out += parse_blocks(page.read_text(encoding="utf-8"), _rel(page))
    return out


def _pages_with(modes: tuple[str, ...]) -> list[str]:
    return sorted({b.page for b in _all_blocks() if b.mode in modes})


def run_page(page: str, modes: tuple[str, ...]) -> int:
    """Execute the page's blocks whose mode is in ``modes``, in order, in one namespace."""
    namespace: dict = {"__name__": "__docs_example__"}
    ran = 0
    for block in parse_blocks((ROOT / page).read_text(encoding="utf-8"), page):
        if block.mode in modes:
            exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102 (our own docs)
            ran += 1
    return ran


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """A temporary working directory; process-wide torch settings that an example's training
    run changes (deterministic mode, default dtype) are restored afterwards."""
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    dtype = torch.get_default_dtype()
    yield tmp_path
    torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    torch.set_default_dtype(dtype)


def test_every_block_is_accounted_for():
    """All markers are well formed; every block compiles; the counts are reported."""
    blocks = _all_blocks()
    for b in blocks:
        compile(b.code, b.where, "exec")
    counts = {m: sum(b.mode == m for b in blocks) for m in ("run", "slow", "skip")}
    print(f"docs python blocks: {counts['run']} run in the default suite, {counts['slow']} slow, "
          f"{counts['skip']} skipped")
    for b in blocks:
        if b.mode == "skip":
            print(f"  skipped {b.where}: {b.reason}")
    assert counts["run"] > 0 and sum(counts.values()) == len(blocks)


@pytest.mark.parametrize("page", _pages_with(("run",)))
def test_docs_examples_run(page, in_tmp):
    assert run_page(page, ("run",)) > 0


@pytest.mark.slow
@pytest.mark.parametrize("page", _pages_with(("slow",)))
def test_docs_slow_examples_run(page, in_tmp):
    assert run_page(page, ("run", "slow")) > 0


@pytest.mark.parametrize("where,reason", [(b.where, b.reason) for b in _all_blocks() if b.mode == "skip"])
def test_docs_skipped_example(where, reason):
    pytest.skip(f"docs example {where} not run: {reason}")


# ---------------------------------------------------------------- the extraction itself
def test_parser_modes_order_and_indent():
    text = ("x\n```python\na = 1\n```\n\n<!-- docs-test: skip (needs data) -->\n```python\nb = a\n```\n"
            "- item\n\n    ```python\n    c = 2\n    ```\n<!-- docs-test: slow (trains) -->\n```py\nd = 3\n```\n"
            "```bash\necho no\n```\n")
    blocks = parse_blocks(text, "p.md")
    assert [(b.line, b.mode, b.reason, b.code) for b in blocks] == [
        (2, "run", "", "a = 1\n"), (7, "skip", "needs data", "b = a\n"),
        (12, "run", "", "c = 2\n"), (16, "slow", "trains", "d = 3\n")]


@pytest.mark.parametrize("text,match", [
    ("<!-- docs-test: skip -->\n```python\nx\n```\n", "needs a reason"),
    ("<!-- docs-test: maybe (x) -->\n```python\nx\n```\n", "unknown docs-test mode"),
    ("<!-- docs-test: skip (x) -->\ntext\n```python\nx\n```\n", "not followed"),
    ("<!-- docs-test: skip (x) -->\n```bash\nx\n```\n", "not a python one"),
    ("<!-- docs-test: skip (x) -->\n", "not followed"),
    ("```python\nx = 1\n", "not closed"),
])
def test_parser_rejects_bad_markers(text, match):
    with pytest.raises(MarkerError, match=match):
        parse_blocks(text, "p.md")


def test_a_failing_example_fails_and_names_its_line(tmp_path, monkeypatch):
    page = tmp_path / "bad.md"
    page.write_text("```python\nok = 1\n```\n\n```python\nraise RuntimeError('broken example')\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(RuntimeError, match="broken example") as err:
        run_page("bad.md", ("run",))
    assert any(str(entry.path) == "bad.md:5" for entry in err.traceback)
