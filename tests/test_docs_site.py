"""The documentation site's machinery: a strict build fails on a broken link, formulas become
MathML at build time, the configuration page agrees with the code, README links resolve.

(The full site is built by ``make docs`` and by CI after the tests; ``make docs-check`` looks
at it in a browser: tests/test_docs_browser.py.)
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spikevideoformer.engine import load_config

ROOT = Path(__file__).resolve().parents[1]


def _hooks():
    pytest.importorskip("mkdocs")
    pytest.importorskip("latex2mathml")
    spec = importlib.util.spec_from_file_location("svf_mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- strict builds
def _build(project: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=project,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.mark.parametrize("target,ok", [("other.md", True), ("missing.md", False),
                                       ("other.md#no-such-heading", False)])
def test_strict_build_fails_on_a_broken_link(tmp_path, target, ok):
    """The repository's mkdocs.yml settings (strict + link/anchor validation) on a throwaway site."""
    pytest.importorskip("mkdocs")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(f"# Home\n\nSee [the other page]({target}).\n")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A heading\n")
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump({
        "site_name": "t", "strict": config["strict"], "validation": config["validation"],
        "nav": ["index.md", "other.md"]}))
    proc = _build(tmp_path)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, out
    if not ok:  # the warning names the link, and strict mode turned it into a failure
        assert "Aborted" in out and f"link '{target}'" in out, out


def test_repository_config_is_strict():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["strict"] is True
    assert set(config["validation"].values()) == {"warn"}  # with strict, every one fails the build
    assert "--strict" in (ROOT / "Makefile").read_text() and "make docs" in (ROOT / ".ci" / "run").read_text()


# ---------------------------------------------------------------- build-time maths
def test_formulas_become_mathml_with_their_tags():
    hooks = _hooks()

    class Page:
        class file:
            src_uri = "x.md"

    html = ('<p>a</p><div class="arithmatex">\\[\nh_t = \\frac{1}{\\tau} x_t &lt; 1 \\tag{1.1}\n\\]</div>'
            '<span class="arithmatex">\\(q_j\\)</span> :class:<code>~a.b.TaskData</code>')
    out = hooks.on_page_content(html, Page, None, None)
    assert "arithmatex" not in out and "\\tag" not in out and "\\frac" not in out
    assert out.count("<math") == 2 and '<span class="eq-tag">(1.1)</span>' in out
    assert "<mfrac>" in out and "&#x0003C;" in out  # the unescaped '<' became a MathML operator
    assert out.endswith(" <code>TaskData</code>")
    for bad in ("a^", "\\begin{cases} a", "\\notacommand{x}"):
        with pytest.raises(hooks.PluginError, match="x.md"):
            hooks.on_page_content(f'<div class="arithmatex">\\[{bad}\\]</div>', Page, None, None)


def test_generated_config_table_lists_every_key_with_its_default():
    table = _hooks().config_defaults_markdown()
    cfg = load_config()
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            assert f"| `{section.name}.{f.name}` |" in table
    assert "| `optim.betas` | `[0.9, 0.999]` |" in table and "| `model.init` | `null` |" in table


# ---------------------------------------------------------------- the hand-written pages
def _documented_default(cell: str):
    text = cell.strip().strip("`")
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 as a string
        except ValueError:
            return value
    return tuple(value) if isinstance(value, list) else value


def test_config_page_defaults_match_the_code():
    text = (ROOT / "docs" / "config_schema.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():  # | key | type | default | used by | meaning |  (\| inside cells)
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)]
        if len(cells) == 7 and re.fullmatch(r"`\w+\.\w+`", cells[1]):
            rows[cells[1].strip("`")] = cells[3]
    cfg = load_config()
    checked = 0
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            key = f"{section.name}.{f.name}"
            assert key in rows, f"{key} has no row in docs/config_schema.md"
            code = getattr(getattr(cfg, section.name), f.name)
            assert _documented_default(rows[key]) == code, f"{key}: page says {rows[key]!r}, code {code!r}"
            checked += 1
    assert checked > 30 and "<!-- generated: config defaults -->" in text


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [t for t in re.findall(r"\]\(([^)]+)\)", text) if not re.match(r"[a-z]+://", t)]
    assert links
    missing = [t for t in links if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, missing
