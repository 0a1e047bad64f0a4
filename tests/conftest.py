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
    return [exe] if exe else [sys.executable, "-c", "import sys; from r1_interp.cli import main; sys.exit(main())"]

GRAPHS = SHARED/"data"/"graphs"
HAIKU = GRAPHS/"haiku"/"capital-state-dallas.json"
DEGENERATE = GRAPHS/"degenerate"
needs_shared_graphs = pytest.mark.skipif(not HAIKU.exists(), reason=f"shared graphs not found at {GRAPHS} (../shared is absent)")
