"""The main job killed (SIGKILL to the whole process group, kernels included) in the middle of three different
phases of the tiny preset, rerun each time: the last rerun finishes, every notebook is done, nothing was lost and
nothing was done twice (training steps, collected batches, labels, graphs each exactly once), and one more rerun
does nothing."""
import json, os, subprocess
from pathlib import Path
import pandas as pd, pytest
from conftest import r1_interp_cmd

def test_killed_at_three_phases_then_finished(tiny_run):
    tmp_path, env, args, seen, done = (tiny_run[k] for k in ("outputs", "env", "args", "seen", "done"))
    ckpt = tmp_path/"train"/"checkpoints"/"layers_0-1"
    assert seen["train"]["record"] == "running" and not seen["train"]["eval_written"], "the kill did not land inside the train notebook"
    assert "layers_0-1: started but killed" in seen["train"]["status"], seen["train"]["status"]
    assert seen["label"]["record"] == "running" and seen["graphs"]["record"] == "running"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # nothing lost, nothing twice
    metrics = pd.DataFrame([json.loads(l) for l in (ckpt/"metrics.jsonl").read_text().splitlines()])
    for hp, g in metrics.groupby("hookpoint"):
        assert sorted(g.step) == list(range(g.step.max() + 1)), f"{hp}: a training step recorded twice or lost"
    store = json.loads((tmp_path/"features"/"store"/"meta.json").read_text())
    assert store["tokens"] == 8192
    for l in (0, 1):
        labels = [json.loads(x) for x in (tmp_path/"features"/"labels"/f"layer_{l}"/"labels.jsonl").read_text().splitlines()]
        feats = [x["feature"] for x in labels]
        assert len(feats) == len(set(feats)) == 12, f"layer {l}: labels lost or repeated"
    summary = pd.read_csv(tmp_path/"graphs"/"summary.csv")
    assert len(summary) == summary.id.nunique() == 24 and (summary.verdict == "ok").all()
    graphs = [g for g in (tmp_path/"graphs"/"json").rglob("*.json") if g.name != "graph-metadata.json"]
    assert len(graphs) == 24 and not list(tmp_path.rglob("*.tmp*")), "half-written files left behind"
    st = subprocess.run(r1_interp_cmd() + ["status", "--preset", "tiny", "--outputs", str(tmp_path)], capture_output=True, text=True, env=env)
    assert st.returncode == 0 and st.stdout.count(": done") == 9, st.stdout
    again = subprocess.run(r1_interp_cmd() + args, capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0 and "ok:" not in again.stdout and again.stdout.count("skipped:") == 13, again.stdout

def test_disk_full_while_writing_a_report_is_a_failure_not_a_result(tmp_path, monkeypatch):
    "ENOSPC while the report is written: the job fails with the OS's message, nothing half-written is left as its output, and it is not done."
    import errno
    from r1_interp.pipeline import runner
    from r1_interp.testing.fixtures import make_notebook
    nb = make_notebook(["x = 1"], tmp_path/"nb.ipynb")
    job = runner.Job(nb, tmp_path/"out"/"job.ipynb", {})
    def full(*a, **k): raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runner, "notebook_to_html", full)
    res = runner.run_batch([job])
    assert not res.ok and "No space left on device" in res.failures[0].error
    assert not job.output.exists() and not job.html.exists() and not runner.is_complete(job)
    assert runner.read_record(job)["status"] == "failed"
    monkeypatch.undo()
    assert runner.run_batch([job]).results[0].status == "ok" and runner.is_complete(job)

def test_two_runs_on_one_folder_make_each_request_once(tiny_run):
    """Two `r1-interp run`s of the tiny preset on one outputs folder, Claude labelling through a local Messages API:
    the second refuses while the first holds the folder, naming it; a third told to --wait waits, then finds
    everything done. Every API request is made once; the labels are Claude's and the API key (a sentinel) reaches no file
    and no output. Then a changed corpus makes exactly the jobs that read it stale."""
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    tmp_path = tiny_run["outputs"]       # the killed and finished run (the earlier phases are skipped)
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    out = ["--preset", "tiny", "--outputs", str(tmp_path)]
    early = sum((["--phase", p] for p in ("prepare", "sweep", "select", "train", "summary", "collect")), [])
    first = subprocess.run(r1_interp_cmd() + ["run", *out, *early], capture_output=True, text=True, timeout=900, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    with FakeMessagesAPI(rule_answer, faults=[(".", ["slow"] * 20)], slow_seconds=5.0) as api:   # A stays busy while B and C start
        sentinel = "sk-ant-SENTINEL-0123456789abcdef-never-write-me"
        env = dict(env, ANTHROPIC_API_KEY=sentinel, ANTHROPIC_BASE_URL=api.url)
        args = r1_interp_cmd() + ["run", *out, "--labeller", "claude", "--phase", "label"]     # the phase that pays
        a = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines = []
        for line in a.stdout:                               # wait until A works inside the label phase
            lines.append(line)
            if "== label:" in line: break
        assert a.poll() is None, "".join(lines)
        b = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        c = subprocess.Popen(args + ["--wait", "900"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        rest = a.stdout.read(); a.wait()
        c_out = c.communicate(timeout=900)[0]
        assert a.returncode == 0, "".join(lines) + rest
        assert b.returncode == 2 and f"pid {a.pid}" in b.stderr and "in use" in b.stderr, b.stdout + b.stderr
        assert "ok:" not in b.stdout, "the refused run ran a notebook"
        assert c.returncode == 0 and "ok:" not in c_out and "skipped:" in c_out, c_out
        bodies = [json.dumps(r["body"], sort_keys=True) for r in api.requests if r["path"].startswith("/v1/messages")]
    assert len(bodies) >= 2 * 12 * 3, len(bodies)            # labels, detection and fuzzing for 12 features of 2 layers
    assert len(bodies) == len(set(bodies)), f"{len(bodies) - len(set(bodies))} requests made twice"
    for l in (0, 1):
        recs = [json.loads(x) for x in (tmp_path/"features"/"labels"/f"layer_{l}"/"labels.jsonl").read_text().splitlines()]
        claude = [r["feature"] for r in recs if r["labeller"] == "claude"]
        assert len(claude) == len(set(claude)) == 12, f"layer {l}: a feature labelled by Claude twice, or not at all"
        latest = {r["feature"]: r for r in recs}.values()
        assert all(r["labeller"] == "claude" and r["model"] == "claude-sonnet-4-6" and r["status"] == "ok" for r in latest)
        cost = (tmp_path/"features"/"labels"/f"layer_{l}"/"cost.csv").read_text()
        assert "claude" in cost and "messages" in cost
    leaked = [str(p) for p in tmp_path.rglob("*") if p.is_file() and sentinel.encode() in p.read_bytes()]
    assert leaked == [], f"the API key was written to {leaked}"
    assert sentinel not in "".join(lines) + rest + b.stdout + b.stderr + c_out
    # a changed corpus makes exactly the jobs that read it stale, and status says why
    env.pop("ANTHROPIC_API_KEY"); env.pop("ANTHROPIC_BASE_URL")
    small = subprocess.run(r1_interp_cmd() + ["prepare", *out, "--max-tokens", "8192"], capture_output=True, text=True, timeout=300, env=env)
    assert small.returncode == 0, small.stdout[-2000:] + small.stderr[-2000:]
    assert json.loads(next((tmp_path/"data").glob("*/corpus/meta.json")).read_text())["key"]["max_tokens"] == 8192
    st = subprocess.run(r1_interp_cmd() + ["status", "--json", *out], capture_output=True, text=True, timeout=120, env=env)
    rows = [json.loads(l) for l in st.stdout.splitlines()]
    state = {r["phase"]: (r["state"], r["reason"]) for r in rows}
    assert state["prepare"] == ("stale", "parameters changed: settings.max_tokens 8192 -> 16384"), state["prepare"]
    for phase in ("sweep", "train", "summary", "collect"):
        assert state[phase][0] == "stale" and "corpus/meta.json changed" in state[phase][1], (phase, state[phase])
    assert state["select"] == ("done", None), state["select"]
    # the graphs read the label texts, which Claude changed; the comparisons read the graphs, which did not change
    assert state["graphs"][0] == "stale" and state["graphs"][1].startswith("input r1_interp.features.labels.labels_digest("), state["graphs"]
    assert state["compare"] == ("done", None), state["compare"]
    # the label jobs ran with --labeller claude; the preset's 'auto' is the heuristic labeller without a key: that is all that differs
    assert state["label"] == ("stale", "parameters changed: settings.labeller 'claude' -> 'heuristic'"), state["label"]
    # a label notebook run by hand (plain papermill) on a layer another process is labelling is refused, naming it
    import papermill as pm
    from r1_interp.core.io import hold_lock
    with hold_lock(tmp_path/"features"/"labels"/"layer_0"/".lock"):
        with pytest.raises(pm.PapermillExecutionError, match=f"pid {os.getpid()}"):
            pm.execute_notebook(str(Path(__file__).parents[1]/"nbs"/"pipelines"/"label.ipynb"), str(tmp_path/"by_hand.ipynb"),
                                parameters=dict(preset="tiny", outputs=str(tmp_path), layer=0), progress_bar=False)
