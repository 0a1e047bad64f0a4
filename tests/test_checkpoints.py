"""Checkpoints and stores under kills and damage. A training run stopped right after any of its checkpoints (in
process, and by a real SIGKILL) resumes to weights, optimizer state, dead-latent counters, RNG state, step counter and
metrics bit-identical to an uninterrupted run's; a damaged checkpoint falls back to the previous complete one, or fails
naming the file and how to start over; `rebuild` (the pipeline's --force) really starts over; a damaged feature store
or collection checkpoint is detected, named and rebuilt."""
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from r1_interp.core.config import save_config
from r1_interp.models.settings import TrainConfig
from r1_interp.models.corpus import tokenize_corpus, TokenCorpus
from r1_interp.models.registry import load_model
from r1_interp.transcoders import train as T
from r1_interp.transcoders.train import train_transcoders, read_metrics, CheckpointingTrainer

HOOKS = ("layers.0.mlp", "layers.1.mlp")
N_SAVES = 6          # 24 steps, sparsify saves after steps 3, 7, ..., 23 with save_every=4 (then the final save)

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("ckpt")
    model, tok = load_model("tiny-qwen2")
    cdir = tokenize_corpus("demo", tok, work/"corpus", ctx_len=32, max_tokens=32 * 200)
    # a low dead threshold makes the dead-latent counters and AuxK part of what must be restored
    cfg = TrainConfig(model="tiny-qwen2", layers=(0, 1), transcoder=dict(expansion_factor=4, k=8), tokens_per_layer=32 * 96, batch_size=4,
                      save_every=4, dead_feature_threshold=200, lr=1e-3)
    ref = train_transcoders(cfg, cdir, work/"ref", "run", model=model)
    return dict(work=work, model=model, tok=tok, corpus=cdir, cfg=cfg, ref=ref)

def snapshot(run) -> dict:
    "Everything a resumed run must reproduce: coder weights, optimizer state, counters, step, RNG state and metrics."
    run = Path(run); out = {}
    for hp in HOOKS:
        for k, v in load_file(str(run/hp/"sae.safetensors")).items(): out[f"{hp}/{k}"] = v
    opt = torch.load(run/"optimizer_0.pt", weights_only=True)
    for pid, st in opt["state"].items():
        for k, v in st.items(): out[f"opt/{pid}/{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    for i, g in enumerate(opt["param_groups"]):
        for k in ("lr", "k", "weight_sum", "lr_max"): out[f"opt/group{i}/{k}"] = torch.tensor(float(g.get(k, -1)))
    if (sched := run/"lr_scheduler_0.pt").exists():
        out["scheduler/last_epoch"] = torch.tensor(torch.load(sched, weights_only=True)["last_epoch"])
    rank = torch.load(run/"rank_0_state.pt", weights_only=True)
    for hp, v in rank["num_tokens_since_fired"].items(): out[f"since_fired/{hp}"] = v
    out["global_step"] = torch.tensor(torch.load(run/"state.pt", weights_only=True)["global_step"])
    rng = run/"rng_rank_0.pt"
    out["rng"] = torch.load(rng, weights_only=True)["torch"] if rng.exists() else torch.zeros(0)
    m = read_metrics(run).drop(columns="seconds").sort_values(["step", "hookpoint"]).reset_index(drop=True)
    out["metrics"] = torch.tensor(m[["step", "fvu", "l0", "auxk", "dead_fraction", "never_fired", "tokens"]].to_numpy())
    return out

def assert_same(a:dict, b:dict, what:str):
    assert a.keys() == b.keys(), f"{what}: {sorted(a.keys() ^ b.keys())}"
    diff = {k: float((a[k].double() - b[k].double()).abs().max()) if a[k].shape == b[k].shape else "shape" for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"{what}: not bit-identical to the uninterrupted run: {diff}"

class Killed(BaseException): "Stands for a kill: nothing in the trainer catches it."

def stop_after(monkeypatch, n:int):
    "Make training stop right after its `n`-th checkpoint is written."
    orig, count = CheckpointingTrainer.save, [0]
    def save(self):
        orig(self); count[0] += 1
        if count[0] == n: raise Killed(n)
    monkeypatch.setattr(CheckpointingTrainer, "save", save)

def interrupted(tiny, out, n, monkeypatch, **kw):
    "Train in `out`, stopped right after checkpoint `n`; returns the run folder and the echoed messages of the resumed run."
    stop_after(monkeypatch, n)
    with pytest.raises(Killed): train_transcoders(tiny["cfg"], tiny["corpus"], out, "run", model=tiny["model"], **kw)
    monkeypatch.undo()
    return out/"run"

@pytest.mark.parametrize("n", range(1, N_SAVES + 1))
def test_resumed_after_any_checkpoint_equals_uninterrupted(tiny, tmp_path, monkeypatch, n):
    run = interrupted(tiny, tmp_path, n, monkeypatch)
    at = torch.load(run/"state.pt", weights_only=True)["global_step"]
    assert at == 4 * n - 1, "the checkpoint counts the batches already applied"
    assert sorted(read_metrics(run).step.unique()) == list(range(at)), "the metrics saved are those of the applied batches"
    logs = []
    train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path, "run", model=tiny["model"], echo=logs.append)
    assert_same(snapshot(run), snapshot(tiny["ref"]), f"stopped after checkpoint {n} (step {at})")

def test_last_partial_batch_is_trained_after_a_resume_too(tiny, tmp_path, monkeypatch):
    "94 chunks in batches of 4: 23 full batches and a partial one; checkpoint 6 comes after batch 23 (index 22)."
    cfg = tiny["cfg"].replace(tokens_per_layer=32 * 94)
    ref = train_transcoders(cfg, tiny["corpus"], tmp_path/"ref", "run", model=tiny["model"])
    assert torch.load(ref/"state.pt", weights_only=True)["global_step"] == 24
    stop_after(monkeypatch, 6)
    with pytest.raises(Killed): train_transcoders(cfg, tiny["corpus"], tmp_path/"cut", "run", model=tiny["model"])
    monkeypatch.undo()
    run = train_transcoders(cfg, tiny["corpus"], tmp_path/"cut", "run", model=tiny["model"])
    assert_same(snapshot(run), snapshot(ref), "stopped before the partial batch")

def test_adam_with_warmup_resumes_exactly(tiny, tmp_path, monkeypatch):
    "Adam's moments and the warm-up scheduler's position come back too."
    cfg = tiny["cfg"].replace(optimizer="adam", lr_warmup_steps=10)
    ref = train_transcoders(cfg, tiny["corpus"], tmp_path/"ref", "run", model=tiny["model"])
    stop_after(monkeypatch, 2)
    with pytest.raises(Killed): train_transcoders(cfg, tiny["corpus"], tmp_path/"cut", "run", model=tiny["model"])
    monkeypatch.undo()
    assert (tmp_path/"cut"/"run"/"lr_scheduler_0.pt").exists()
    run = train_transcoders(cfg, tiny["corpus"], tmp_path/"cut", "run", model=tiny["model"])
    assert_same(snapshot(run), snapshot(ref), "adam stopped after checkpoint 2")

def test_rng_state_is_resumed_exactly(tiny, tmp_path, monkeypatch):
    "With noise drawn from torch's global RNG on every batch (a stochastic stand-in), the weights depend on the RNG stream."
    m = tiny["model"]
    h = m.model.layers[0].mlp.register_forward_hook(lambda mod, a, o: o + 0.05 * torch.randn_like(o))
    try:
        ref = train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path/"ref", "run", model=m)
        assert not torch.equal(load_file(str(ref/"layers.1.mlp"/"sae.safetensors"))["W_dec"],
                               load_file(str(tiny["ref"]/"layers.1.mlp"/"sae.safetensors"))["W_dec"]), "the noise did not reach training"
        run = interrupted(tiny, tmp_path/"cut", 3, monkeypatch)
        torch.manual_seed(12345)                     # whatever the resuming process did with its RNG before
        train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path/"cut", "run", model=m)
    finally: h.remove()
    assert_same(snapshot(run), snapshot(ref), "noisy training stopped after checkpoint 3")

CHILD = """
import sys, time
from r1_interp.core.config import load_config
from r1_interp.models.settings import TrainConfig
from r1_interp.models.registry import load_model
from r1_interp.transcoders.train import train_transcoders, CheckpointingTrainer
cfg = load_config(sys.argv[1], TrainConfig)
model, _ = load_model(cfg.model)
kill_at = int(sys.argv[4])
orig, n = CheckpointingTrainer.save, [0]
def save(self):
    orig(self); n[0] += 1
    if n[0] == kill_at: print("CHECKPOINT", n[0], flush=True); time.sleep(600)   # killed here by the test
CheckpointingTrainer.save = save
train_transcoders(cfg, sys.argv[2], sys.argv[3], "run", model=model)
print("DONE", flush=True)
"""

def test_sigkill_right_after_a_checkpoint_then_resume(tiny, tmp_path):
    save_config(tiny["cfg"], tmp_path/"train.yaml"); (tmp_path/"child.py").write_text(CHILD)
    cmd = lambda kill_at: [sys.executable, str(tmp_path/"child.py"), str(tmp_path/"train.yaml"), str(tiny["corpus"]), str(tmp_path/"out"), str(kill_at)]
    p = subprocess.Popen(cmd(2), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    t0 = time.monotonic()
    for line in p.stdout:
        if line.startswith("CHECKPOINT"): break
        assert time.monotonic() - t0 < 300
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL
    run = tmp_path/"out"/"run"
    assert torch.load(run/"state.pt", weights_only=True)["global_step"] == 7
    r = subprocess.run(cmd(0), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "DONE" in r.stdout, r.stderr[-3000:]
    assert "Resuming training at step 7" in r.stdout
    assert_same(snapshot(run), snapshot(tiny["ref"]), "SIGKILLed after checkpoint 2")
    assert not list((tmp_path/"out").glob(".run.saving")), "no unfinished save left behind"

def _truncate(p:Path): p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

def test_damaged_newest_checkpoint_falls_back_to_the_previous(tiny, tmp_path, monkeypatch):
    run = interrupted(tiny, tmp_path, 3, monkeypatch)
    assert torch.load(tmp_path/".run.prev"/"state.pt", weights_only=True)["global_step"] == 7
    bad = run/"layers.0.mlp"/"sae.safetensors"; _truncate(bad)
    logs = []
    train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path, "run", model=tiny["model"], echo=logs.append)
    said = "\n".join(logs)
    assert str(bad) in said and "truncated" in said and "previous complete checkpoint" in said, said
    assert_same(snapshot(run), snapshot(tiny["ref"]), "resumed from the previous checkpoint")
    assert (tmp_path/".run.damaged"/"layers.0.mlp"/"sae.safetensors").exists(), "the damaged checkpoint is kept aside"

def test_changed_bytes_are_caught_by_the_manifest(tiny, tmp_path, monkeypatch):
    "Same size, one byte flipped (torch.load would read it without complaint): the sha256 in the manifest catches it."
    run = interrupted(tiny, tmp_path, 4, monkeypatch)
    p = run/"optimizer_0.pt"; b = bytearray(p.read_bytes()); b[len(b) // 2] ^= 0xFF; p.write_bytes(bytes(b))
    assert T.checkpoint_problem(run) == f"{p}: its contents changed since it was written (sha256 mismatch)"
    logs = []
    train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path, "run", model=tiny["model"], echo=logs.append)
    assert any(str(p) in l for l in logs), logs
    assert_same(snapshot(run), snapshot(tiny["ref"]), "resumed from the previous checkpoint")

def test_no_complete_checkpoint_left_names_the_files_and_the_way_out(tiny, tmp_path, monkeypatch):
    run = interrupted(tiny, tmp_path, 2, monkeypatch)
    _truncate(run/"state.pt"); _truncate(tmp_path/".run.prev"/"state.pt")
    for _ in range(2):     # the same clear error on every rerun, nothing destroyed
        with pytest.raises(T.CheckpointError) as e: train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path, "run", model=tiny["model"])
        msg = str(e.value)
        assert str(run/"state.pt") in msg and str(tmp_path/".run.prev"/"state.pt") in msg and "--force" in msg, msg
    logs = []
    train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path, "run", model=tiny["model"], rebuild=True, echo=logs.append)
    assert any("from the start" in l for l in logs), logs
    assert_same(snapshot(run), snapshot(tiny["ref"]), "rebuilt from scratch")
    assert not (tmp_path/".run.damaged").exists(), "the damaged checkpoints are gone"
    assert not (tmp_path/".run.prev").exists(), "a finished run keeps one checkpoint, the new run's"

def test_kill_between_the_two_renames_of_a_save(tiny, tmp_path, monkeypatch):
    "The save renamed the current checkpoint to .prev and was killed before renaming the new one in: the new one is used."
    run = interrupted(tiny, tmp_path, 3, monkeypatch)
    saving, prev = tmp_path/".run.saving", tmp_path/".run.prev"
    shutil.copytree(run, saving); shutil.rmtree(prev); os.replace(run, prev)
    shutil.rmtree(prev/"layers.1.mlp")        # and the older one is incomplete: must not matter
    train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path, "run", model=tiny["model"])
    assert_same(snapshot(run), snapshot(tiny["ref"]), "recovered the finished save")

def test_checkpoint_from_an_older_version_is_set_aside(tiny, tmp_path, monkeypatch):
    run = interrupted(tiny, tmp_path, 2, monkeypatch)
    (run/T.MANIFEST).unlink(); shutil.rmtree(tmp_path/".run.prev")
    logs = []
    train_transcoders(tiny["cfg"], tiny["corpus"], tmp_path, "run", model=tiny["model"], echo=logs.append)
    assert any("manifest.json" in l and "from the start" in l for l in logs), logs
    assert (tmp_path/".run.stale"/"state.pt").exists()
    assert_same(snapshot(run), snapshot(tiny["ref"]), "trained from the start")

def test_rebuild_retrains_a_finished_run(tiny, tmp_path):
    cfg = tiny["cfg"]
    run = train_transcoders(cfg, tiny["corpus"], tmp_path, "run", model=tiny["model"])
    (run/"marker").write_text("x")
    logs = []
    train_transcoders(cfg, tiny["corpus"], tmp_path, "run", model=tiny["model"], echo=logs.append)
    assert (run/"marker").exists() and not any("from the start" in l for l in logs), "a finished run is not retrained"
    train_transcoders(cfg, tiny["corpus"], tmp_path, "run", model=tiny["model"], rebuild=True, echo=logs.append)
    assert not (run/"marker").exists() and any("from the start" in l for l in logs), logs
    assert_same(snapshot(run), snapshot(tiny["ref"]), "rebuilt")

# ---- the feature store and its collection checkpoint ----

@pytest.fixture(scope="module")
def coll(tiny):
    from r1_interp.transcoders.io import random_transcoders
    corpus = TokenCorpus(tiny["corpus"])
    kw = dict(batch_size=4, n_top=4, n_sample=4, n_pool=8, before=3, after=1, save_every=3, tokenizer=tiny["tok"], n_tokens=32 * 60)
    coders = random_transcoders(64, 2, expansion_factor=4, k=8)
    from r1_interp.features.collect import collect_features, FeatureStore
    ref = FeatureStore(collect_features(tiny["model"], coders, corpus, tiny["work"]/"store_ref", echo=lambda *_: None, **kw))
    return dict(corpus=corpus, coders=coders, kw=kw, ref=ref)

def _collect(tiny, coll, out, **kw):
    from r1_interp.features.collect import collect_features, FeatureStore
    logs = []
    collect_features(tiny["model"], coll["coders"], coll["corpus"], out, echo=logs.append, **dict(coll["kw"], **kw))
    return FeatureStore(out), "\n".join(logs)

def assert_same_store(a, b):
    for l in (0, 1):
        pd.testing.assert_frame_equal(a.features(l), b.features(l))
        pd.testing.assert_frame_equal(a.examples(l), b.examples(l))

@pytest.mark.parametrize("damage", ["truncated examples", "fewer feature rows", "missing vocab"])
def test_damaged_store_is_detected_and_rebuilt_without_force(tiny, coll, tmp_path, damage):
    import pyarrow.parquet as pq
    from r1_interp.features.collect import FeatureStore, CollectError
    out = tmp_path/"store"; shutil.copytree(coll["ref"].folder, out)
    bad = {"truncated examples": out/"layer_1"/"examples.parquet", "fewer feature rows": out/"layer_0"/"features.parquet",
           "missing vocab": out/"vocab.parquet"}[damage]
    if damage == "truncated examples": _truncate(bad)
    elif damage == "fewer feature rows": pq.write_table(pq.read_table(bad).slice(0, 10), bad)
    else: bad.unlink()
    with pytest.raises(CollectError, match=str(bad)): FeatureStore(out)          # readers name the damaged file
    store, said = _collect(tiny, coll, out)
    assert "already complete" not in said and str(bad) in said and "rebuilding" in said, said
    assert_same_store(store, coll["ref"])
    store, said = _collect(tiny, coll, out)
    assert "already complete" in said

def test_rebuild_recollects_a_complete_store(tiny, coll, tmp_path):
    out = tmp_path/"store"; shutil.copytree(coll["ref"].folder, out)
    _, said = _collect(tiny, coll, out)
    assert "already complete" in said
    store, said = _collect(tiny, coll, out, rebuild=True)
    assert "already complete" not in said and "15 batches this run" in said, said
    assert_same_store(store, coll["ref"])

def _stop_collect(tiny, coll, out, n):
    "A collection stopped right after its `n`-th checkpoint."
    from r1_interp.features.collect import collect_features
    seen = []
    def echo(m):
        if "batches," in m:
            seen.append(m)
            if len(seen) == n: raise Killed(m)
    with pytest.raises(Killed): collect_features(tiny["model"], coll["coders"], coll["corpus"], out, echo=echo, **coll["kw"])

def test_damaged_collection_checkpoint_falls_back_then_fails_clearly(tiny, coll, tmp_path):
    from r1_interp.features.collect import STATE_DIR, CollectError
    out = tmp_path/"store"
    _stop_collect(tiny, coll, out, 3)
    bad = out/STATE_DIR/"state.pt"; _truncate(bad)
    store, said = _collect(tiny, coll, out)
    assert str(bad) in said and "previous complete checkpoint" in said and "6 batches done" in said, said
    assert_same_store(store, coll["ref"])
    out2 = tmp_path/"store2"
    _stop_collect(tiny, coll, out2, 2)
    _truncate(out2/STATE_DIR/"state.pt"); _truncate(out2/f".{STATE_DIR}.prev"/"state.pt")
    with pytest.raises(CollectError) as e: _collect(tiny, coll, out2)
    assert str(out2/STATE_DIR/"state.pt") in str(e.value) and "--force" in str(e.value), str(e.value)
    store, said = _collect(tiny, coll, out2, rebuild=True)
    assert_same_store(store, coll["ref"])

def test_loading_a_trained_coder_checks_the_run_manifest(tiny, tmp_path):
    "A changed byte in a finished run's coder (finite, right shapes: the file checks cannot see it) is named on load."
    from r1_interp.transcoders.io import load_transcoders, TranscoderError
    run = tmp_path/"run"; shutil.copytree(tiny["ref"], run)
    p = run/"layers.1.mlp"/"sae.safetensors"; b = bytearray(p.read_bytes()); b[-3] ^= 0x01; p.write_bytes(bytes(b))
    with pytest.raises(TranscoderError) as e: load_transcoders(run, layers=[1], d_model=64)
    assert str(p) in str(e.value) and "sha256" in str(e.value) and "--force train" in str(e.value), str(e.value)
    assert sorted(load_transcoders(run, layers=[0], d_model=64)) == [0], "the other layer's coder is intact and loads"
