"""The suite itself: a hung test must fail fast with a stack dump, not eat CI's time."""
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_hung_test_fails_fast_with_stack_dump(tmp_path):
    (tmp_path / "test_hang.py").write_text(
        "import threading\n\n"
        "def test_hangs():\n"
        "    threading.Event().wait()  # never set\n")
    # the repository's pytest configuration, with its limit lowered so this check is quick
    cmd = [sys.executable, "-m", "pytest", "-q", "-c", str(ROOT / "pyproject.toml"),
           "--rootdir", str(tmp_path), "-o", "timeout=3", "-p", "no:cacheprovider",
           str(tmp_path / "test_hang.py")]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert elapsed < 60, elapsed
    assert "Timeout" in out and "test_hangs" in out and "wait" in out, out[-2000:]
