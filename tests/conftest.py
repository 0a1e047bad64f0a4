import os, shutil, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent/"shared"

@pytest.fixture(scope="session")
def root(): return ROOT

def r1_interp_cmd():
    "The console script, or the module entry point when the script is not on PATH."
    exe = shutil.which("r1-interp")
    return [exe] if exe else [sys.executable, "-c", "import sys; from r1_interp.pipeline.cli import main; sys.exit(main())"]

GRAPHS = SHARED/"data"/"graphs"
HAIKU = GRAPHS/"haiku"/"capital-state-dallas.json"
DEGENERATE = GRAPHS/"degenerate"
needs_shared_graphs = pytest.mark.skipif(not HAIKU.exists(), reason=f"shared graphs not found at {GRAPHS} (../shared is absent)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--enable-logging=stderr", "--v=0", "--dump-dom"]

def chromium_dom(url:str, profile, budget_ms:int=5000):
    "(DOM after the page settled, console lines) of `url` in headless Chromium with a fresh profile folder `profile`."
    import subprocess
    r = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}", url], capture_output=True, text=True, timeout=120)
    return r.stdout, [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
