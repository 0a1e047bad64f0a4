"""Every notebook in nbs/ (library chapters and pipeline notebooks) through nbdev's own test runner.

Cells flagged with a tst_flag (`#| slow`) are skipped, as `nbdev-test` does without `--flags`."""
import os
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT/"nbs").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("_"))

@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT/"nbs")))
def test_notebook(nb, monkeypatch):
    cfg = get_config(ROOT)
    monkeypatch.chdir(ROOT/"nbs")
    ok, _ = run_notebook(nb, skip_flags=cfg.tst_flags.split(), showerr=True)
    assert ok, f"{nb.name} failed under nbdev's test runner (see the error above)"
