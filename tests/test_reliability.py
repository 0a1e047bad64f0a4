"""The main job killed (SIGKILL to the whole process group, kernels included) in the middle of three different
phases of the tiny preset, rerun each time: the last rerun finishes, every notebook is done, nothing was lost and
nothing was done twice (training steps, collected batches, labels, graphs each exactly once), and one more rerun
does nothing."""
import json, os, signal, subprocess, time
from pathlib import Path
import pandas as pd
from conftest import r1_interp_cmd

def _run_until(args, env, marker:str, ready, timeout:float=900):
    """Start the console script in its own process group; once `marker` has appeared in its output and `ready()` is
    true (work of that phase is under way on disk), SIGKILL the whole group."""
    p = subprocess.Popen(r1_interp_cmd() + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    t0, lines = time.time(), []
    for line in p.stdout:
        lines.append(line)
        if marker in line:
            while not ready():
                assert p.poll() is None, "finished before the kill:\n" + "".join(lines[-20:]) + p.stdout.read()[-2000:]
                assert time.time() - t0 < timeout; time.sleep(0.02)
            os.killpg(p.pid, signal.SIGKILL); p.wait()
            return "".join(lines)
        assert time.time() - t0 < timeout
    p.wait()
    raise AssertionError(f"finished before '{marker}' appeared:\n" + "".join(lines[-20:]))

def _lines(p) -> int:
    try: return len(p.read_text().splitlines())
    except OSError: return 0

def test_killed_at_three_phases_then_finished(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    args = ["run", "--preset", "tiny", "--outputs", str(tmp_path)]
    ckpt = tmp_path/"train"/"checkpoints"/"layers_0-1"
    _run_until(args, env, "== train:", lambda: (ckpt/"rank_0_state.pt").exists())     # mid-training, after its first checkpoint (every 8 steps)
    rec = json.loads((tmp_path/"train"/"layers_0-1.run.json").read_text())
    assert rec["status"] == "running" and not (ckpt/"eval.json").exists(), "the kill did not land inside the train notebook"
    st = subprocess.run(r1_interp_cmd() + ["status", "--preset", "tiny", "--outputs", str(tmp_path)], capture_output=True, text=True, env=env)
    assert "layers_0-1: started but killed" in st.stdout, st.stdout
    _run_until(args, env, "== label:", lambda: _lines(tmp_path/"features"/"labels"/"layer_0"/"labels.jsonl") >= 3)   # inside layer 0's labelling
    assert json.loads((tmp_path/"features"/"layer_0.run.json").read_text())["status"] == "running"
    _run_until(args, env, "== graphs:", lambda: len(list((tmp_path/"graphs"/"records").rglob("*.json"))) >= 8)   # in the middle of the 24 graphs
    assert json.loads((tmp_path/"graphs"/"graphs.run.json").read_text())["status"] == "running"
    done = subprocess.run(r1_interp_cmd() + args, capture_output=True, text=True, timeout=1200, env=env)
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
    from r1_interp import runner
    nb = runner.make_notebook(["x = 1"], tmp_path/"nb.ipynb")
    job = runner.Job(nb, tmp_path/"out"/"job.ipynb", {})
    def full(*a, **k): raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(runner, "notebook_to_html", full)
    res = runner.run_batch([job])
    assert not res.ok and "No space left on device" in res.failures[0].error
    assert not job.output.exists() and not job.html.exists() and not runner.is_complete(job)
    assert runner.read_record(job)["status"] == "failed"
    monkeypatch.undo()
    assert runner.run_batch([job]).results[0].status == "ok" and runner.is_complete(job)
