"""Special-token positions are left out of training, evaluation and collection: a model with a planted massive
activation on its special tokens trains, evaluates and collects exactly as the same model without it (the regression
test of the special-token fix), and the same runs with nothing excluded show the plant dominating (so the test can
fail)."""
import math
import numpy as np
import pandas as pd
import pytest
import torch
from r1_interp.models.settings import TrainConfig
from r1_interp.models.corpus import tokenize_corpus, TokenCorpus, special_token_ids
from r1_interp.models.registry import load_model
from r1_interp.transcoders.train import train_transcoders
from r1_interp.transcoders.io import load_transcoders
from r1_interp.transcoders.evaluate import evaluate_transcoders
from r1_interp.features.collect import collect_features, FeatureStore

LAYER = 1          # tiny-qwen2's last layer: nothing after it attends to the planted positions

class Planted(torch.nn.Module):
    """The norm in front of an MLP, with a massive vector (norm `size`) added to its output at special-token positions:
    the MLP's input there is huge, and so is its output (an attention-sink-like activation), while every ordinary
    position is untouched."""
    def __init__(self, norm, ids, special, size=3000.0):
        super().__init__(); self.norm, self.ids, self.special = norm, ids, special
        g = torch.Generator().manual_seed(1)
        self.register_buffer("vec", size * torch.nn.functional.normalize(torch.randn(norm.weight.shape[0], generator=g), dim=0))
    def forward(self, x):
        out = self.norm(x)
        ids = self.ids.get("ids")
        if ids is None or ids.shape != x.shape[:-1]: return out
        return out + torch.isin(ids.to(x.device), self.special)[..., None].to(out.dtype) * self.vec

def plant(model, special):
    "Plant the massive activation in `model` (in place) at layer `LAYER`'s MLP; returns a function that removes it."
    ids = {}
    h = model.base_model.register_forward_pre_hook(lambda m, a, kw: ids.__setitem__("ids", kw.get("input_ids", a[0] if a else None)), with_kwargs=True)
    layer = model.base_model.layers[LAYER]; orig = layer.post_attention_layernorm
    layer.post_attention_layernorm = Planted(orig, ids, torch.tensor(special))
    def undo(): h.remove(); layer.post_attention_layernorm = orig
    return undo

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("special")
    model, tok = load_model("tiny-qwen2")
    corpus = TokenCorpus(tokenize_corpus("demo", tok, work/"corpus", ctx_len=64, max_tokens=64 * 400, eval_fraction=0.1))
    assert corpus.meta["separator_token_id"] == tok.eos_token_id and tok.eos_token_id in corpus.excluded_ids
    special = special_token_ids(tok)
    n_special = int(np.isin(np.asarray(corpus.tokens), special).sum())
    assert n_special > corpus.meta["n_chunks"]           # BOS in every chunk and separators inside them
    cfg = TrainConfig(model="tiny-qwen2", layers=(LAYER,), transcoder=dict(expansion_factor=4, k=8), tokens_per_layer=64 * 240, batch_size=8,
                      save_every=1000, dead_feature_threshold=20_000, lr=1e-4)
    return dict(work=work, model=model, tok=tok, corpus=corpus, cfg=cfg, special=special)

def train(setup, name, planted, exclude=True):
    model, corpus = setup["model"], setup["corpus"]
    undo = plant(model, setup["special"]) if planted else (lambda: None)
    try:
        torch.manual_seed(0)
        if not exclude:     # the old behaviour: nothing excluded
            corpus.meta["excluded_token_ids"], saved = [], corpus.meta["excluded_token_ids"]
            import json; p = corpus.path/"meta.json"; old = p.read_text(); p.write_text(json.dumps(corpus.meta))
        try: run = train_transcoders(setup["cfg"], corpus.path, setup["work"]/"ckpt", name, model=model)
        finally:
            if not exclude: p.write_text(old); corpus.meta["excluded_token_ids"] = saved
    finally: undo()
    return load_transcoders(run, d_model=64)

def evaluate(setup, coders, planted, excluded):
    model, corpus = setup["model"], setup["corpus"]
    undo = plant(model, setup["special"]) if planted else (lambda: None)
    try: return evaluate_transcoders(model, coders, corpus.batches("eval", 8), excluded_ids=excluded)
    finally: undo()

def test_planted_activation_changes_nothing_when_excluded(setup):
    clean, planted = train(setup, "clean", False), train(setup, "planted", True)
    for name, p in clean[LAYER].state_dict().items():
        assert torch.equal(p, planted[LAYER].state_dict()[name]), f"{name} differs: training saw the planted positions"
    ex = setup["corpus"].excluded_ids
    t0, f0 = evaluate(setup, clean, False, ex)
    t1, f1 = evaluate(setup, clean, True, ex)
    cols = ["fvu", "fvu_se", "l0", "ce_increase", "ce_increase_se", "kl", "ce_increase_zero_ablation", "ce_increase_mean_ablation",
            "ce_increase_mean_ablation_se", "tokens"]
    pd.testing.assert_frame_equal(t0[cols], t1[cols], rtol=1e-5, atol=1e-7)
    for k in ("ce_increase", "ce_increase_se", "top1_agreement", "ce_increase_mean_ablation_all", "clean_ce"):
        assert math.isclose(f0[k], f1[k], rel_tol=1e-5, abs_tol=1e-7), (k, f0[k], f1[k])
    assert f0["excluded_token_ids"] == ex

def test_without_exclusion_the_plant_dominates(setup):
    "The same measurements with nothing excluded: the planted positions take over training and evaluation."
    clean, leaky = train(setup, "clean", False), train(setup, "leaky", True, exclude=False)
    w0, w1 = clean[LAYER].W_dec.detach(), leaky[LAYER].W_dec.detach()
    assert not torch.allclose(w0, w1, atol=1e-3)
    t0, _ = evaluate(setup, clean, False, [])
    t1, _ = evaluate(setup, clean, True, [])
    assert t1.loc[LAYER, "fvu"] > 0.95 and t1.loc[LAYER, "fvu"] - t0.loc[LAYER, "fvu"] > 0.3, (t0.fvu, t1.fvu)   # the plant is the variance
    print(f"without exclusion: FVU {t0.loc[LAYER, 'fvu']:.3f} unplanted vs {t1.loc[LAYER, 'fvu']:.3f} planted")

def test_collection_ignores_planted_positions(setup):
    coders = train(setup, "clean", False)
    model, corpus, tok = setup["model"], setup["corpus"], setup["tok"]
    kw = dict(n_tokens=64 * 80, batch_size=8, n_top=5, n_sample=5, n_pool=8, before=4, after=2, tokenizer=tok, echo=lambda *_: None)
    s0 = FeatureStore(collect_features(model, coders, corpus, setup["work"]/"store0", **kw))
    undo = plant(model, setup["special"])
    try: s1 = FeatureStore(collect_features(model, coders, corpus, setup["work"]/"store1", **kw))
    finally: undo()
    pd.testing.assert_frame_equal(s0.features(LAYER), s1.features(LAYER))
    pd.testing.assert_frame_equal(s0.examples(LAYER), s1.examples(LAYER))
    ex = s0.examples(LAYER)
    assert not np.isin(corpus.tokens[ex.chunk.values, ex.pos.values], corpus.excluded_ids).any()
