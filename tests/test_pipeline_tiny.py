"""Every phase of the tiny preset end to end through the console script: prepare, sweep (4 grid points), select,
train, summary, graphs (all 24 benchmark prompts, each health-checked); then a rerun that skips everything."""
import json, subprocess
from pathlib import Path
import yaml
from conftest import r1_interp_cmd

def test_tiny_preset_end_to_end(tmp_path):
    r = subprocess.run(r1_interp_cmd() + ["run", "--preset", "tiny", "--outputs", str(tmp_path), "--workers", "2"], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for phase in ("prepare", "sweep", "select", "train", "summary", "graphs"): assert f"== {phase}:" in r.stdout
    sweep = sorted(p.name for p in (tmp_path/"sweep").glob("e*_k*.html"))
    assert sweep == ["e4_k16.html", "e4_k8.html", "e8_k16.html", "e8_k8.html"]
    win = yaml.safe_load((tmp_path/"sweep"/"winner.yaml").read_text())
    assert set(win) == {"expansion_factor", "k"}
    ev = json.loads((tmp_path/"train"/"checkpoints"/"layers_0-1"/"eval.json").read_text())
    assert [l["layer"] for l in ev["layers"]] == [0, 1] and all(l["expansion_factor"] == win["expansion_factor"] and l["k"] == win["k"] for l in ev["layers"])
    for l in ev["layers"]: assert l["fvu"] < l["fvu_skip_only"] and {"ce_increase_zero_ablation", "ce_increase_mean_ablation"} <= set(l)
    full = json.loads((tmp_path/"train"/"full_replacement.json").read_text())
    assert 0 < full["top1_agreement"] <= 1
    ct = tmp_path/"transcoders"/"circuit-tracer"
    assert sorted(p.name for p in ct.iterdir()) == ["config.yaml", "layer_0.safetensors", "layer_1.safetensors"]
    html = (tmp_path/"train"/"summary.html").read_text()
    assert "CE increase" in html and "data:image/png;base64" in html
    graphs = sorted((tmp_path/"graphs"/"json").rglob("*.json"))
    assert len([g for g in graphs if g.name != "graph-metadata.json"]) == 24
    check = subprocess.run(r1_interp_cmd() + ["graph", "check", str(tmp_path/"graphs"/"json")], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and "24 of 24 graphs ok" in check.stdout, check.stdout + check.stderr
    summary = (tmp_path/"graphs"/"summary.csv").read_text()
    assert summary.count(",ok,") == 24 and "replacement_score" in summary
    import pandas as pd
    phases = pd.read_csv(tmp_path/"graphs"/"phases"/"summary.csv")
    assert len(phases) == 12 and (phases.think_verdict == "ok").all() and phases.think_target_is_top.all()   # the 12 reasoning prompts
    assert len(pd.read_csv(tmp_path/"graphs"/"interventions.csv")) > 0
    report = (tmp_path/"graphs"/"graphs.html").read_text()
    assert "replacement" in report and report.count("data:image/png;base64") >= 24
    again = subprocess.run(r1_interp_cmd() + ["run", "--preset", "tiny", "--outputs", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count("skipped:") == 9, again.stdout
    assert "ok:" not in again.stdout, "a rerun repeats nothing"
