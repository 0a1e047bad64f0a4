"""Bad params files: one clear error naming the file, the key and what was expected; and the CLI stops before any work."""
import subprocess
from pathlib import Path
import pytest
from r1_interp.config import ConfigError, load_config
from conftest import r1_interp_cmd

CASES = [  # (file name, YAML, key named, words of the expectation)
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\nlearning_rate: 0.1\n", "learning_rate", "expected a TrainConfig key"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\nbatch_size: eight\n", "batch_size", "expected an integer >= 1, got 'eight'"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\nbatch_size: 0\n", "batch_size", "expected an integer >= 1, got 0"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\nexpansion_factor: 2\nk: 5000\n", "k", "dictionary size = expansion_factor 2 x hidden 576"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0, 30]\n", "layers", "layer indices from 0 to 29"),
    ("train.yaml", "model: r1-distill-qwen-1.5b\nlayers: [28]\n", "layers", "layer indices from 0 to 27"),
    ("sweep.yaml", "model: r1-distill-qwen-1.5b\npilot_layers: [2, 14, 40]\n", "pilot_layers", "layer indices from 0 to 27"),
    ("sweep.yaml", "model: smollm2-135m\npilot_layers: [1]\nexpansion_factors: [1]\nks: [8, 1000]\n", "ks", "dictionary size"),
    ("prepare.yaml", "model: tiny-qwen2\neval_fraction: 0.9\n", "eval_fraction", "a number between 0.0 and 0.5"),
    ("prepare.yaml", "model: tiny-qwen2\nctx_len: [64]\n", "ctx_len", "an integer between 8 and 32768"),
    ("motifs.yaml", "null_model: erdos-renyi\n", "null_model", "one of 'configuration', 'layered'"),
    ("motifs.yaml", "size: 5\n", "size", "one of 3, 4"),
    ("graphs.yaml", "categories: [arithmetic, poetry]\n", "categories", "one of 'arithmetic'"),
    ("label.yaml", "batch: maybe\n", "batch", "true or false"),
    ("prepare.yaml", "- model\n- tiny-qwen2\n", "(top level)", "a mapping of PrepareConfig keys"),
    ("prepare.yaml", "model: tiny-qwen2\nctx_len: 64\n  seed: 1\n", "(file)", "valid YAML (line"),
    ("training.yaml", "model: tiny-qwen2\n", "(file name)", "a params file named after a phase"),
]

@pytest.mark.parametrize("fname,text,key,expected", CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_bad_params_file(tmp_path, fname, text, key, expected):
    path = tmp_path/fname
    path.write_text(text)
    with pytest.raises(ConfigError) as e: load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: key '{key}': "), msg
    assert expected in msg, msg
    assert e.value.key == key and e.value.source == str(path)

def test_missing_file_named(tmp_path):
    with pytest.raises(ConfigError, match="prepare.yaml"): load_config(tmp_path/"prepare.yaml")

def _project(tmp_path, root, prepare_yaml):
    (tmp_path/"nbs").symlink_to(root/"nbs")
    (tmp_path/"params"/"bad").mkdir(parents=True)
    (tmp_path/"params"/"bad"/"prepare.yaml").write_text(prepare_yaml)
    return tmp_path

def test_cli_stops_on_bad_params_before_work(tmp_path, root):
    proj = _project(tmp_path, root, "model: tiny-qwen2\nctx_len: 4\n")
    r = subprocess.run(r1_interp_cmd() + ["run", "--root", str(proj), "--preset", "bad"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: {proj}/params/bad/prepare.yaml: key 'ctx_len': expected an integer between 8 and 32768, got 4"
    assert not (proj/"outputs").exists(), "nothing may be written before the params are valid"

def test_cli_unknown_preset(tmp_path, root):
    proj = _project(tmp_path, root, "model: tiny-qwen2\n")
    r = subprocess.run(r1_interp_cmd() + ["run", "--root", str(proj), "--preset", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "preset 'nope'" in r.stderr and "presets here: bad" in r.stderr
