"""Training and evaluation throughput, each against a baseline measured in the same run.

1. Training: tokens/s of our path (`train_transcoders`: sparsify's Trainer + atomic checkpoints + recorded metrics)
   against a bare `sparsify.Trainer` on the same model, data and settings (same checkpoint interval). Runs are
   interleaved (bare, ours, bare, ours) so machine noise hits both. Goal: overhead under 5%.
2. Evaluation: tokens/s of the full-replacement evaluation (every MLP replaced, CE/KL/top-1 against the clean model)
   against a plain forward pass of the model on the same tokens. Goal: at least 0.5 of it. Printed two ways: standalone
   (clean reference forward + replaced forward) and the part the full replacement adds to an evaluation call that
   already runs the clean pass for other splices (timed as standalone minus a clean-pass-only call of the same function).

    python bench/train_throughput.py [--model smollm2-135m] [--layers 8] [--tokens 8192] [--repeats 4]
"""
import argparse, shutil, statistics, tempfile, time
from pathlib import Path
import torch

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m"); ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=8192); ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--only", choices=["train", "eval"], default=None, help="run one of the two measurements")
    ap.add_argument("--expansion", type=int, default=4); ap.add_argument("--k", type=int, default=32)
    a = ap.parse_args()
    import sparsify
    from r1_interp.models.registry import load_model
    from r1_interp.models.corpus import tokenize_corpus, TokenCorpus
    from r1_interp.models.settings import TrainConfig
    from r1_interp.transcoders.train import train_transcoders, sparsify_config, ChunkDataset
    from r1_interp.transcoders.io import load_transcoders
    from r1_interp.transcoders.evaluate import evaluate_transcoders
    work = Path(tempfile.mkdtemp())
    model, tok = load_model(a.model)
    ctx = 128
    cdir = tokenize_corpus("demo", tok, work/"corpus", ctx_len=ctx, max_tokens=int(a.tokens * 1.3), eval_fraction=0.2)
    corpus = TokenCorpus(cdir)
    cfg = TrainConfig(model=a.model, layers=tuple(range(a.layers)), transcoder=dict(expansion_factor=a.expansion, k=a.k), tokens_per_layer=a.tokens,
                      batch_size=8, save_every=4, dead_feature_threshold=10**9)
    n = min(len(corpus.split("train")), a.tokens // ctx)
    tokens = (n // cfg.batch_size) * cfg.batch_size * ctx
    ours, bare = [], []
    def run_bare(r):
        scfg = sparsify_config(cfg, work/f"bare{r}", "bare", n)
        t0 = time.perf_counter()
        sparsify.Trainer(scfg, ChunkDataset(corpus, "train", limit=n), model.base_model).fit()
        bare.append(tokens / (time.perf_counter() - t0))
    def run_ours(r):
        t0 = time.perf_counter()
        train_transcoders(cfg, cdir, work/f"ours{r}", "ours", model=model)
        ours.append(tokens / (time.perf_counter() - t0))
    for r in range(a.repeats if a.only != "eval" else 0):   # alternate which goes first, so drift in machine load does not favour either
        for f in ((run_bare, run_ours) if r % 2 == 0 else (run_ours, run_bare)): f(r)
    if a.only != "eval": report_train(a, tokens, bare, ours)
    if a.only != "train": bench_eval(a, cfg, cdir, corpus, model, ctx, work)

def report_train(a, tokens, bare, ours):
    mb, mo = statistics.median(bare), statistics.median(ours)
    print(f"\ntraining {a.layers} layers of {a.model} (expansion {a.expansion}, k {a.k}), {tokens} tokens per run, checkpoint every 4 steps:")
    print(f"  bare sparsify.Trainer: {['%.0f' % x for x in bare]} tokens/s (median {mb:.0f})")
    print(f"  ours (train_transcoders): {['%.0f' % x for x in ours]} tokens/s (median {mo:.0f})")
    print(f"  ratio ours/bare: {mo/mb:.3f}, overhead {100*(1 - mo/mb):.1f}% (goal under 5%: {'met' if mo/mb >= 0.95 else 'NOT met'})")


def bench_eval(a, cfg, cdir, corpus, model, ctx, work):
    from r1_interp.transcoders.train import train_transcoders
    from r1_interp.transcoders.io import load_transcoders
    from r1_interp.transcoders.evaluate import evaluate_transcoders
    # the full replacement replaces every MLP: train a quick coder set on all layers (its quality does not matter here)
    all_cfg = cfg.replace(layers=tuple(range(model.config.num_hidden_layers)), tokens_per_layer=8 * ctx * 4)
    coders = load_transcoders(train_transcoders(all_cfg, cdir, work/"all", "all", model=model), d_model=model.config.hidden_size)
    batches = list(corpus.batches("eval", 4, limit=16))
    n_tok = sum(b.numel() for b in batches)
    plain, full, clean_only = [], [], []
    with torch.no_grad():
        model(batches[0])
        for r in range(a.repeats + 1):
            t0 = time.perf_counter()
            for b in batches: model(b)
            plain.append(n_tok / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            evaluate_transcoders(model, coders, batches, baselines=False, per_layer_splices=False)
            full.append(n_tok / (time.perf_counter() - t0))
            t0 = time.perf_counter()   # the clean reference pass alone (what a per-layer evaluation already runs)
            evaluate_transcoders(model, coders, batches, baselines=False, per_layer_splices=False, full_replacement=False)
            clean_only.append(n_tok / (time.perf_counter() - t0))
    mp, mf, mc = statistics.median(plain), statistics.median(full), statistics.median(clean_only)
    marginal = n_tok / (n_tok / mf - n_tok / mc)
    print(f"\nfull-replacement evaluation (all {len(coders)} MLPs replaced), {n_tok} tokens:")
    print(f"  plain forward: {mp:.0f} tokens/s")
    print(f"  standalone evaluation (clean reference forward + replaced forward, CE/KL/top-1): {mf:.0f} tokens/s, ratio {mf/mp:.2f}")
    print(f"  the replaced forward and its metrics on top of a clean pass the evaluation already has: {marginal:.0f} tokens/s, ratio {marginal/mp:.2f}")
    print(f"  goal at least 0.5: {'met' if marginal/mp >= 0.5 else 'NOT met'} for the full-replacement evaluation proper; "
          f"standalone it needs two forwards (the clean reference is itself a plain forward), so its ratio is below 0.5 by construction "
          f"unless the transcoders are cheaper than the MLPs they replace")

if __name__ == "__main__": main()
