"""Skip transcoders on tiny-qwen2: training reconstructs MLP outputs better than the skip-only and zero baselines,
a run killed mid-way resumes to the same step count and weights with no lost checkpoint, the CE evaluation equals a
hand splice, Pareto selection, export parity with circuit-tracer, the distributed planner and a 2-process gloo run,
and every bad-checkpoint error."""
import json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import r1_interp_cmd, ROOT
from r1_interp.core.config import save_config
from r1_interp.models.settings import TrainConfig
from r1_interp.models.corpus import tokenize_corpus, TokenCorpus
from r1_interp.models.registry import load_model
from r1_interp.transcoders.train import train_transcoders, read_metrics, checkpoint_problem
from r1_interp.transcoders.io import load_transcoders, load_transcoder, export_circuit_tracer, load_circuit_tracer_set, TranscoderError
from r1_interp.transcoders.evaluate import evaluate_transcoders
from r1_interp.transcoders.sweep import select_winner
from r1_interp.transcoders.distributed import plan_distribution, PlanError

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    model, tok = load_model("tiny-qwen2")
    cdir = tokenize_corpus("demo", tok, work/"corpus", ctx_len=64, max_tokens=64 * 1500, eval_fraction=0.05)
    cfg = TrainConfig(model="tiny-qwen2", layers=(0, 1), transcoder=dict(expansion_factor=8, k=16), tokens_per_layer=64 * 1400, batch_size=8,
                      save_every=40, dead_feature_threshold=20_000, lr=1e-4)
    run = train_transcoders(cfg, cdir, work/"ckpt", model=model)
    return dict(work=work, model=model, tok=tok, corpus=cdir, cfg=cfg, run=run)

def test_trained_coders_reload_and_beat_baselines(tiny):
    coders = load_transcoders(tiny["run"], d_model=64)
    table, full = evaluate_transcoders(tiny["model"], coders, TokenCorpus(tiny["corpus"]).batches("eval", 8))
    for l in (0, 1):
        r = table.loc[l]
        assert r.fvu < 0.7 * r.fvu_skip_only and r.fvu < 0.7 * r.fvu_zero, table
        assert 0 < r.l0 <= 16
    assert full["layers"] == 2 and 0.9 < full["top1_agreement"] <= 1

def test_metrics_cover_every_step_once(tiny):
    m = read_metrics(tiny["run"])
    steps = int(torch.load(tiny["run"]/"state.pt")["global_step"])
    for hp, d in m.groupby("hookpoint"): assert d.step.tolist() == list(range(steps)), hp

RESUME_SCRIPT = """
import sys, torch
from r1_interp.core.config import load_config
from r1_interp.models.settings import TrainConfig
from r1_interp.models.registry import load_model
from r1_interp.transcoders.train import train_transcoders
cfg = load_config(sys.argv[1], TrainConfig)
model, _ = load_model(cfg.model)
torch.manual_seed(0)
train_transcoders(cfg, sys.argv[2], sys.argv[3], "resumable", model=model)
"""

def test_killed_run_resumes_to_the_same_step(tiny, tmp_path):
    cfg = tiny["cfg"].replace(save_every=10, batch_size=4)
    save_config(cfg, tmp_path/"train.yaml")
    (tmp_path/"go.py").write_text(RESUME_SCRIPT)
    out = tmp_path/"ckpt"; run = out/"resumable"
    cmd = [sys.executable, str(tmp_path/"go.py"), str(tmp_path/"train.yaml"), str(tiny["corpus"]), str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while not (run/"state.pt").exists() or torch.load(run/"state.pt")["global_step"] < 20:
        assert p.poll() is None, "the run finished before it could be killed: make it longer"
        assert time.monotonic() < deadline; time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    killed_at = int(torch.load(run/"state.pt")["global_step"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Resuming training at step" in r.stdout
    n_chunks = len(TokenCorpus(tiny["corpus"]).split("train")[:1400])
    expected = n_chunks // cfg.batch_size
    assert int(torch.load(run/"state.pt")["global_step"]) == expected > killed_at
    assert sorted(p.name for p in run.glob("layers.*.mlp")) == ["layers.0.mlp", "layers.1.mlp"]
    for hp, d in read_metrics(run).groupby("hookpoint"): assert d.step.tolist() == list(range(expected)), "steps lost or recorded twice"
    assert [p.name for p in out.glob(".*")] == [], "no half-written checkpoint left behind; a finished run keeps one"
    assert checkpoint_problem(run) is None
    coders = load_transcoders(run, d_model=64)
    ref = load_transcoders(train_transcoders(cfg, tiny["corpus"], tmp_path/"ref", "resumable", model=tiny["model"]), d_model=64)
    for l in (0, 1):     # killed at any moment (here: whenever step 20 had been saved), the weights are the uninterrupted run's
        for k, v in ref[l].state_dict().items(): assert torch.equal(v, coders[l].state_dict()[k]), f"layer {l} {k} differs"

def test_ce_increase_matches_hand_splice(tiny):
    coder = load_transcoders(tiny["run"], layers=[1])[1]
    ids = next(TokenCorpus(tiny["corpus"]).batches("eval", 4))
    table, _ = evaluate_transcoders(tiny["model"], {1: coder}, [ids], baselines=False, full_replacement=False)
    m = tiny["model"]
    with torch.no_grad():
        ce = lambda lg: torch.nn.functional.cross_entropy(lg[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        clean = ce(m(ids).logits)
        h = m.model.layers[1].mlp.register_forward_hook(lambda mod, a, o: coder(a[0].reshape(-1, 64)).sae_out.reshape(o.shape))
        spliced = ce(m(ids).logits); h.remove()
    assert abs(table.loc[1, "ce_increase"] - float(spliced - clean)) < 1e-5

def test_pareto_selection_on_a_synthetic_grid():
    g = pd.DataFrame(dict(expansion_factor=[8, 8, 8, 16, 16, 16], k=[8, 16, 32] * 2, l0=[8., 16, 32] * 2,
                          ce_increase=[0.20, 0.080, 0.079, 0.15, 0.060, 0.050], dead=[0.01, 0.02, 0.03, 0.05, 0.08, 0.30]))
    w, t = select_winner(g, max_dead_fraction=0.10)
    assert t.pareto.tolist() == [False, False, False, True, True, False]
    assert (w.expansion_factor, w.k) == (16, 16)
    w2, _ = select_winner(g, max_dead_fraction=0.5)      # (16, 32) feasible now: best 0.050; 0.060 is outside 0.005 of it
    assert (w2.expansion_factor, w2.k) == (16, 32)
    w3, _ = select_winner(g, max_dead_fraction=0.5, tolerance=0.25)   # within 25%: the sparser (16, 16) wins
    assert (w3.expansion_factor, w3.k) == (16, 16)

def test_export_round_trip_parity_on_real_activations(tiny, tmp_path):
    coders = load_transcoders(tiny["run"])
    ts = load_circuit_tracer_set(export_circuit_tracer(coders, tmp_path/"ct", "tiny-qwen2", n_layers=2))
    ids = next(TokenCorpus(tiny["corpus"]).batches("eval", 4))
    acts = {}
    hs = [tiny["model"].model.layers[l].mlp.register_forward_hook(lambda m, a, o, l=l: acts.__setitem__(l, a[0].reshape(-1, 64))) for l in (0, 1)]
    with torch.no_grad(): tiny["model"](ids)
    for h in hs: h.remove()
    with torch.no_grad():
        for l in (0, 1):
            diff = (coders[l](acts[l]).sae_out - ts[l](acts[l])).abs().max()
            assert diff < 1e-5, f"layer {l}: {diff}"

def test_distributed_planner_rules():
    assert plan_distribution(range(28), 7)["per_rank"][0] == [0, 1, 2, 3]
    for bad in (3, 5, 6, 8):
        with pytest.raises(PlanError, match="divide"): plan_distribution(range(28), bad)
    with pytest.raises(PlanError, match="layers 0-23 with --nproc 8; layers 24-27 with --nproc 4"): plan_distribution(range(28), 8)
    assert plan_distribution(range(28), 8, mode="ddp")["nproc"] == 8

def test_two_gloo_processes_with_module_distribution(tmp_path):
    out = tmp_path/"out"
    prep = subprocess.run(r1_interp_cmd() + ["prepare", "--preset", "tiny", "--outputs", str(out)], capture_output=True, text=True, timeout=300)
    assert prep.returncode == 0, prep.stderr
    r = subprocess.run(r1_interp_cmd() + ["train", "--preset", "tiny", "--nproc", "2", "--outputs", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "$ " in r.stdout and "--nproc_per_node=2" in r.stdout and "--mode modules" in r.stdout
    run = out/"train"/"checkpoints"/"layers_0-1"
    assert (run/"rank_0_state.pt").exists() and (run/"rank_1_state.pt").exists()
    assert set(read_metrics(run).hookpoint) == {"layers.0.mlp", "layers.1.mlp"}
    load_transcoders(run, d_model=64)
    bad = subprocess.run(r1_interp_cmd() + ["train", "--preset", "tiny", "--nproc", "3", "--outputs", str(out)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "divide by the number of processes (3)" in bad.stderr
    # the same run SIGKILLed (both ranks) right after its second checkpoint, then resumed: each rank's coders, optimizer
    # and counters come back, so the weights are the uninterrupted run's bit for bit
    (tmp_path/"worker.py").write_text(KILLING_WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(tmp_path/"worker.py"), "--params",
           str(out/"train"/"torchrun_params.yaml"), "--corpus", str(out/"data"/"tiny-qwen2"/"corpus"), "--out", str(tmp_path/"cut"),
           "--run-name", "layers_0-1", "--mode", "modules"]
    killed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, KILL_AT="2"))
    # both ranks print into one pipe at once: each writes its line (newline first) in one os.write, which cannot interleave
    assert killed.returncode != 0 and re.search(r"^rank \d killed after checkpoint 2$", killed.stdout, re.M), \
        killed.stdout[-2000:] + killed.stderr[-2000:]
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, KILL_AT="0"))
    assert resumed.returncode == 0 and "Resuming training at step" in resumed.stdout, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    a, b = load_transcoders(run, d_model=64), load_transcoders(tmp_path/"cut"/"layers_0-1", d_model=64)
    for l in (0, 1):
        for k, v in a[l].state_dict().items(): assert torch.equal(v, b[l].state_dict()[k]), f"layer {l} (rank {l}) {k} differs after the resume"

KILLING_WORKER = """
import os, signal, sys
from r1_interp.transcoders.train import CheckpointingTrainer
from r1_interp.transcoders.distributed import _worker
kill_at, orig, n = int(os.environ["KILL_AT"]), CheckpointingTrainer.save, [0]
def save(self):
    orig(self); n[0] += 1
    if n[0] == kill_at:
        sys.stdout.flush()
        os.write(1, f"\\nrank {os.environ.get('RANK', '?')} killed after checkpoint {n[0]}\\n".encode())
        os.kill(os.getpid(), signal.SIGKILL)
CheckpointingTrainer.save = save
_worker(sys.argv[1:])
"""

def _broken_copy(src, dst, edit):
    shutil.copytree(src, dst); edit(dst); return dst

def test_bad_checkpoints_name_the_file(tiny, tmp_path):
    good = tiny["run"]/"layers.0.mlp"
    from safetensors.torch import load_file, save_file
    def tensors(d, fn):
        t = load_file(str(d/"sae.safetensors")); fn(t); save_file(t, str(d/"sae.safetensors"))
    cases = {
        "missing": (lambda d: (d/"sae.safetensors").unlink(), "sae.safetensors: missing"),
        "nan": (lambda d: tensors(d, lambda t: t["W_dec"].__setitem__((0, 0), float("nan"))), "sae.safetensors: W_dec has 1 NaN/infinite values"),
        "bigk": (lambda d: (d/"cfg.json").write_text(json.dumps(dict(json.loads((d/"cfg.json").read_text()), k=100_000))), "cfg.json: k = 100000, expected an integer between 1 and the dictionary size 512"),
        "shape": (lambda d: tensors(d, lambda t: t.__setitem__("b_dec", torch.zeros(65))), "sae.safetensors: b_dec has shape (65,), expected (64,)"),
    }
    for name, (edit, msg) in cases.items():
        d = _broken_copy(good, tmp_path/name, edit)
        with pytest.raises(TranscoderError) as e: load_transcoder(d, d_model=64)
        assert str(d) in str(e.value) and msg in str(e.value), str(e.value)
    with pytest.raises(TranscoderError, match="does not match the model's hidden size 1536"): load_transcoder(good, d_model=1536)
    with pytest.raises(TranscoderError, match=r"no transcoder for layer\(s\) \[5\]"): load_transcoders(tiny["run"], layers=[0, 5])

# ---- layer groups that fit in memory (layers_per_job: auto) ----------------------------------------------------------
def test_layer_group_arithmetic():
    "Given one layer's bytes, a step's and a budget: how many layers train together, and the balanced groups."
    from r1_interp.models.settings import balanced_groups, layers_that_fit
    from r1_interp.pipeline.phases import kept_groups
    GB = 1e9
    # R1's size on CPU (measured: 1.84 GB per layer, 0.88 GB per step of 4 x 256 tokens) with 10.5 GB left
    n = layers_that_fit(1.84 * GB, 10.5 * GB, 0.88 * GB)
    assert n == 5 and [len(g) for g in balanced_groups(range(28), n)] == [5, 5, 5, 5, 4, 4]
    assert [len(g) for g in balanced_groups(range(28), 6)] == [6, 6, 6, 5, 5]
    assert [len(g) for g in balanced_groups(range(28), 28)] == [28] and balanced_groups(range(3), 1) == [(0,), (1,), (2,)]
    for per in range(1, 30):        # every layer once, in order, sizes within one of each other, none above `per`
        groups = balanced_groups(range(28), per)
        assert sum(groups, ()) == tuple(range(28)) and max(map(len, groups)) - min(map(len, groups)) <= 1
        assert max(map(len, groups)) <= per and len(groups) == -(-28 // per)
    assert layers_that_fit(1.84 * GB, 2.5 * GB, 0.88 * GB) == 0
    with pytest.raises(ValueError, match="at least 1 layer"): balanced_groups(range(4), 0)
    # a plan made again keeps the runs on disk that still fit: their names stay
    assert kept_groups(range(28), 6, ["layers_0-4", "layers_5-9"])[:2] == [tuple(range(5)), tuple(range(5, 10))]
    assert kept_groups(range(28), 4, ["layers_0-4"]) == balanced_groups(range(28), 4)     # too big now: replanned

def test_layers_per_job_setting():
    from r1_interp.core.config import ConfigError
    assert TrainConfig(model="tiny-qwen2", layers=(0, 1), layers_per_job="auto").layers_per_job == "auto"
    assert TrainConfig(model="tiny-qwen2", layers=(0, 1), layers_per_job=1).layer_groups() == [(0,), (1,)]
    for bad in ("max", 0, 1.5, True):
        with pytest.raises(ConfigError, match=r"key 'layers_per_job': expected an integer >= 1, 'auto' or null"):
            TrainConfig(model="tiny-qwen2", layers=(0,), layers_per_job=bad)
    with pytest.raises(ConfigError, match="key 'layers_per_job'"):      # 'auto' needs the planner's number
        TrainConfig(model="tiny-qwen2", layers=(0,), layers_per_job="auto").layer_groups()

def test_planner_emits_groups_that_fit(monkeypatch, capsys):
    "With `layers_per_job: auto` the planner measures a layer (cached), and the free memory decides the groups."
    import r1_interp.transcoders.train as train
    from r1_interp.pipeline.phases import load_preset, plan
    cfgs = load_preset(ROOT, "tiny")
    cfgs["train"] = cfgs["train"].replace(layers_per_job="auto")
    mem = train.training_memory(cfgs["train"], cfgs["prepare"].ctx_len, device="cpu")
    assert mem["per_layer"] > 3 * 4 * 64 * 64 * 8 and mem["step"] >= 0     # weights, gradients, state of 512 x 64
    def jobs_with(free):
        monkeypatch.setattr(train, "available_memory", lambda device=None: int(free))
        return plan(ROOT, "tiny", "train", cfgs, outputs="/tmp/r1-interp-test-none")
    fixed = (mem["model"] + mem["activations"] + mem["step"]) / (1 - train.SAFETY)
    one = jobs_with(fixed + 1.5 * mem["per_layer"] / (1 - train.SAFETY))
    assert [j.name for j in one] == ["layers_0", "layers_1"]
    assert [j.parameters["settings"]["layers"] for j in one] == [[0], [1]]
    assert "at most 1 layer(s) per group: 2 group(s) of 1, 1 layers" in capsys.readouterr().out
    assert [j.name for j in jobs_with(fixed + 3 * mem["per_layer"] / (1 - train.SAFETY))] == ["layers_0-1"]
    with pytest.raises(train.NotEnoughMemory, match="not even one layer fits \\(key 'layers_per_job': 'auto'\\)"):
        jobs_with(fixed / 2)
