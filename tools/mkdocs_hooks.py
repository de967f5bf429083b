"""MkDocs hooks of the documentation site (mkdocs.yml: ``hooks``).

* Math is rendered at build time: every ``$$ ... $$`` block (pymdownx.arithmatex, generic
  mode) becomes MathML (latex2mathml), which browsers draw natively. The site loads no
  JavaScript maths library and nothing from the internet; a formula that does not convert
  fails the build.
* The configuration page gets a section generated from the code (every key with its default,
  read from ``spikevideoformer.engine.TrainConfig``), so the defaults shown cannot drift.
* Sphinx roles left in docstrings (``:class:`X```) are shown as plain code.
"""
from __future__ import annotations

import dataclasses
import html
import re

import latex2mathml.converter
from mkdocs.exceptions import PluginError

_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', re.S)
_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', re.S)
_TAG = re.compile(r"\\tag\{([^{}]*)\}")
_LEFTOVER = re.compile(r">(\\[A-Za-z]+)")
_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const):<code>(~?)([^<]*)</code>")

CONFIG_PAGE = "config_schema.md"
GENERATED_MARK = "<!-- generated: config defaults -->"


def _mathml(tex: str, display: str, page: str) -> str:
    try:
        out = latex2mathml.converter.convert(tex, display=display)
    except Exception as exc:  # latex2mathml raises its own exception types
        raise PluginError(f"{page}: formula does not convert to MathML "
                          f"({type(exc).__name__} {exc}): {tex.strip()}") from exc
    unknown = _LEFTOVER.findall(out)
    if unknown:  # latex2mathml passes commands it does not know through as text
        raise PluginError(f"{page}: formula uses {sorted(set(unknown))}, which latex2mathml "
                          f"does not know: {tex.strip()}")
    return out


def _block(match: re.Match, page: str) -> str:
    tex = html.unescape(match.group(1))
    tag = _TAG.search(tex)
    math = _mathml(_TAG.sub("", tex), "block", page)
    label = f'<span class="eq-tag">({html.escape(tag.group(1))})</span>' if tag else ""
    return f'<div class="math-display">{math}{label}</div>'


def _role(match: re.Match) -> str:
    short, name = match.group(1), match.group(2)
    shown = name.rsplit(".", 1)[-1] if short else name.lstrip(".")
    return f"<code>{shown}</code>"


def on_page_content(html_text: str, page, config, files) -> str:
    src = page.file.src_uri
    html_text = _BLOCK.sub(lambda m: _block(m, src), html_text)
    html_text = _INLINE.sub(lambda m: _mathml(html.unescape(m.group(1)), "inline", src), html_text)
    return _ROLE.sub(_role, html_text)


def _default_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    return str(value)


def config_defaults_markdown() -> str:
    """A table of every config key and its default, read from the code."""
    from spikevideoformer.engine import load_config

    cfg = load_config()
    rows = ["| key | default |", "|---|---|"]
    for section in dataclasses.fields(cfg):
        for f in dataclasses.fields(getattr(cfg, section.name)):
            value = getattr(getattr(cfg, section.name), f.name)
            rows.append(f"| `{section.name}.{f.name}` | `{_default_text(value)}` |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != CONFIG_PAGE:
        return markdown
    if GENERATED_MARK not in markdown:
        raise PluginError(f"{CONFIG_PAGE} lost its '{GENERATED_MARK}' line")
    return markdown.replace(GENERATED_MARK, config_defaults_markdown())
