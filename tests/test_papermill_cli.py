"""Pipeline notebooks under the plain papermill CLI (`-p preset P -p outputs DIR`, no runner), and the README's
JupyterLab lines against a real (tiny) feature store, graph and label log."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from r1_interp.pipeline.phases import PHASES, papermill_command

ROOT = Path(__file__).resolve().parent.parent
HAIKU = ROOT.parent/"shared"/"data"/"graphs"/"haiku"           # the tiny preset's reference group
HAIKU_GRAPH = next(HAIKU.glob("*.json"), Path("none.json"))
PAPERMILL = shutil.which("papermill")

def papermill(cmd:str, cwd=ROOT) -> subprocess.CompletedProcess:
    "Run a papermill command line as the README gives it (no IN_TEST: nbdev's test runner is not involved)."
    env = {k: v for k, v in os.environ.items() if k != "IN_TEST"}
    return subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

def outputs_text(nb) -> str:
    "Every text output of an executed notebook, joined."
    cells = json.loads(Path(nb).read_text())["cells"]
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for c in cells for o in c.get("outputs", []))

def test_readme_papermill_commands_are_the_library_s():
    "Each papermill line of the README is `papermill_command` for its phase, and every phase has one."
    lines = [l.split("   #")[0].strip() for l in (ROOT/"README.md").read_text().splitlines()
             if l.startswith("papermill nbs/pipelines/")]
    names = [re.match(r"papermill nbs/pipelines/(\w+)\.ipynb", l).group(1) for l in lines]
    assert sorted(names) == sorted(PHASES)
    for n, l in zip(names, lines):
        key = re.search(rf" -p {PHASES[n].key} (\S+)$", l) if PHASES[n].key else None
        value = (int(key.group(1)) if key.group(1).isdigit() else key.group(1)) if key else None
        assert l == papermill_command(n, "demo", "outputs/demo", value)

@pytest.mark.skipif(PAPERMILL is None, reason="the papermill CLI is not on PATH")
@pytest.mark.skipif(not HAIKU.is_dir(), reason=f"no shared reference graphs at {HAIKU}")
def test_compare_under_plain_papermill(tmp_path):
    "compare.ipynb with -p preset tiny -p outputs: the preset's groups expanded into the given folder."
    out = tmp_path/"run"
    g = out/"graphs"/"json"/"factual_recall"; g.mkdir(parents=True)
    shutil.copy(HAIKU_GRAPH, g/"g.json")           # one real graph in the run's own group
    nb = tmp_path/"compare.ipynb"
    r = papermill(f"{PAPERMILL} nbs/pipelines/compare.ipynb {nb} -p preset tiny -p outputs {out}")
    assert r.returncode == 0, r.stderr[-3000:]
    import pandas as pd
    t = pd.read_csv(out/"compare"/"graphs.csv")
    # '{outputs}/graphs/json' became the given folder (the only place a graph named g is), the haiku group's folder is
    # taken from the project root, and the groups of the params file that do not exist under `out` hold nothing
    assert sorted(zip(t.group, t.graph)) == [("haiku", HAIKU_GRAPH.stem), ("tiny", "g")], t[["group", "graph"]]
    assert (out/"compare"/"comparisons.csv").exists() and (out/"compare"/"note_model.txt").exists()
    text = outputs_text(nb)
    assert "preset tiny:" in text and "could not use: group 'think': no such folder" in text, text[:2000]

@pytest.mark.skipif(PAPERMILL is None, reason="the papermill CLI is not on PATH")
def test_nothing_to_do_fails_loudly(tmp_path):
    "A notebook that finds nothing to do with what it was given exits non-zero, saying what it got and expected."
    r = papermill(f"{PAPERMILL} nbs/pipelines/select.ipynb {tmp_path/'s.ipynb'} -p preset tiny -p outputs {tmp_path/'empty'}")
    assert r.returncode != 0
    empty = tmp_path/"empty"
    assert "NoTranscoders" in r.stderr and f"{empty/'sweep'}: no sweep runs' evaluations under" in r.stderr, r.stderr[-2000:]
    from r1_interp.core.io import NothingToDo
    from r1_interp.transcoders.runs import NoTranscoders
    assert issubclass(NoTranscoders, NothingToDo)      # each floor names its own case of "nothing to do"
    # (without -p outputs a notebook is refused, naming the option: nbs/51_phases.ipynb checks notebook_outputs)

def test_jupyterlab_lines(tmp_path, monkeypatch):
    """The README's 'Explore in JupyterLab' lines, run as written from a project folder holding a real tiny feature
    store, a real graph and a real label log where the demo's would be."""
    from r1_interp.testing.fixtures import tiny_feature_store
    from r1_interp.features.labels import LabelLog, make_labeller, label_features
    if not HAIKU.is_dir(): pytest.skip(f"no shared reference graphs at {HAIKU}")
    proj = tmp_path/"proj"; (proj/"params").mkdir(parents=True); (proj/"nbs"/"pipelines").mkdir(parents=True)
    out = proj/"outputs"/"demo"
    store = tiny_feature_store(tmp_path/"work", max_tokens=2000)
    shutil.copytree(store.folder, out/"features"/"store")
    label_features(store, 1, LabelLog(out/"features"/"labels"/"layer_1"/"labels.jsonl"), make_labeller("heuristic"),
                   max_features=3, min_frequency=0.0, echo=lambda *_: None)
    g = out/"graphs"/"json"/"factual_recall"; g.mkdir(parents=True)
    shutil.copy(HAIKU_GRAPH, g/"fact-capital-france.json")
    code = re.search(r"```python\n(.*?)\n```", (ROOT/"README.md").read_text().split("## Explore in JupyterLab")[1], re.S).group(1)
    monkeypatch.chdir(proj)                     # project_root() finds the project from the working folder, as in JupyterLab
    ns = {}
    exec(code, ns)
    assert ns["out"] == out.resolve()
    assert ns["store"].layers == [0, 1] and len(ns["store"].features(1)) == len(store.features(1)) > 0
    assert ns["graph"].n_nodes > 0 and ns["graph"].n_edges > 0 and ns["graph"].path.endswith("fact-capital-france.json")
    assert len(ns["labels"]) == 3 and {k[0] for k in ns["labels"]} == {1}
    assert all(r["status"] == "ok" and r["label"] for r in ns["labels"].values())
