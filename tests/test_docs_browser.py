"""The documentation site in a real browser (``make docs-check``; marked ``browser``, so not in
the default run).

The built site is served from 127.0.0.1 by a local HTTP server that records every request; headless
Chromium opens the home page, the Concepts page (formulas) and one API page, dumps the DOM
after its scripts ran and takes a screenshot (kept in ``build/docs-check/``, out of git). A page
passes when its title, navigation and content are in the DOM, every request it made was
answered (no 404 for a stylesheet, script or image), the stylesheet and script bundles were
really fetched, the console stayed quiet, nothing points outside the site, and the screenshot
shows the theme's header colour (so the CSS applied).

Without Chromium this fails (it is not skipped): ``apt-get install -y chromium``.
``SVF_DOCS_SITE=<dir>`` checks an already built site (``make docs-check`` passes ``site``);
otherwise the site is built here with ``mkdocs build --strict``.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "docs-check"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# offline and quiet: no sync, updates, QUIC, first-run or background requests, a fresh profile
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio",
                  "--enable-logging=stderr", "--log-level=0", "--virtual-time-budget=5000",
                  "--window-size=1280,900", "--hide-scrollbars")
HEADER_RGB = (0x40, 0x51, 0xB5)  # Material's "indigo" primary colour (mkdocs.yml: palette)

# page -> (title, what its content must hold)
PAGES = {
    "index.html": ("spikevideoformer", [r"<h1[^>]*>spikevideoformer", r"Paper results"]),
    "design.html": ("Design and maths - spikevideoformer",
                    [r"<math[^>]*display=\"block\"", r"class=\"eq-tag\">\(3\.5\)"]),
    "api/models.html": ("spikevideoformer.models - spikevideoformer",
                        [r"id=\"spikevideoformer\.models\.create_model\"",
                         r"id=\"spikevideoformer\.models\.SpikeVideoFormer\""]),
}
NAV_ENTRIES = ("Getting started", "Concepts", "Guides", "Configuration", "API reference")

pytestmark = pytest.mark.browser


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed for the docs browser check and none was found "
                f"(looked for {', '.join(CHROMIUM_NAMES)}): apt-get install -y chromium")


class _Recorder(http.server.SimpleHTTPRequestHandler):
    requests: list  # (path, status) of every request, shared through the server

    def log_request(self, code="-", size="-"):
        self.server.requests.append((self.path, int(code) if str(code).isdigit() else code))

    def log_message(self, fmt, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("SVF_DOCS_SITE")
    if given:
        path = Path(given) if Path(given).is_absolute() else ROOT / given
        assert (path / "index.html").is_file(), f"SVF_DOCS_SITE={given}: no index.html there"
        return path
    path = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


@pytest.fixture(scope="module")
def server(site):
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Recorder, directory=str(site)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def open_page(browser: str, url: str, screenshot: Path, profile: Path):
    """Chromium's DOM dump (stdout), its log (stderr) and return code for one page."""
    cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={screenshot}",
           "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return proc.stdout, proc.stderr, proc.returncode


def header_colour(png: Path) -> tuple:
    from PIL import Image

    with Image.open(png) as img:
        return img.convert("RGB").getpixel((img.width // 2, 8))


def _near(rgb, ref, tol=24) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, ref))


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_in_chromium(page, server, tmp_path):
    browser = chromium()
    OUT.mkdir(parents=True, exist_ok=True)
    shot = OUT / (page.replace("/", "_").replace(".html", ".png"))
    shot.unlink(missing_ok=True)
    server.requests.clear()
    url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
    dom, log, rc = open_page(browser, url, shot, tmp_path / "profile")
    (OUT / shot.name.replace(".png", ".dom.html")).write_text(dom, encoding="utf-8")
    (OUT / shot.name.replace(".png", ".log")).write_text(log, encoding="utf-8")
    assert rc == 0, f"chromium exited with {rc}:\n{log[-3000:]}"

    title, content = PAGES[page]
    found = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert found and found.group(1).strip() == title, (found and found.group(1), title)
    nav = re.search(r'<nav class="md-nav md-nav--primary".*?class="md-content"', dom, re.S)
    assert nav, "no primary navigation before the content in the DOM"
    for entry in NAV_ENTRIES:
        assert re.search(rf">\s*{re.escape(entry)}\s*<", nav.group(0)), f"navigation lacks {entry!r}"
    for pattern in content:
        assert re.search(pattern, dom), f"{page}: DOM lacks {pattern!r}"

    # every request answered; the theme's CSS and JS bundles were really loaded
    failed = [(p, s) for p, s in server.requests if not isinstance(s, int) or s >= 400]
    assert not failed, f"{page}: missing assets {failed}"
    paths = [p for p, _ in server.requests]
    assert any(re.search(r"/assets/stylesheets/main\.[0-9a-f]+\.min\.css$", p) for p in paths), paths
    assert any(re.search(r"/assets/javascripts/bundle\.[0-9a-f]+\.min\.js$", p) for p in paths), paths
    # nothing loaded from outside the site, nothing said on the console
    external = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://(?!127\.0\.0\.1)[^"]+)"', dom)
    assert not external, f"{page}: loads from outside the site: {external}"
    console = [ln for ln in log.splitlines() if ":CONSOLE" in ln]
    assert not console, f"{page}: console messages:\n" + "\n".join(console)

    assert shot.is_file() and shot.stat().st_size > 10_000, "no screenshot"
    assert _near(header_colour(shot), HEADER_RGB), f"header colour {header_colour(shot)}: CSS not applied?"
