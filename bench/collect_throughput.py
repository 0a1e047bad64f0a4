"""Feature collection: what the streaming bookkeeping costs next to the pass it rides on, and that its memory does not
grow with the corpus.

1. Throughput: tokens/s of `collect_features` (forward to the deepest layer, every transcoder's encoder, dense
   scatter, counts, histogram, top-N and sample merges with their windows, pool, periodic checkpoints) against a
   plain pass over the same batches that runs the forward and the encoders and nothing else. Runs alternate (plain,
   collect, plain, collect) and the best of each is compared. Goal: bookkeeping under 25% of the plain pass, i.e.
   ratio (collect tokens/s / plain tokens/s) above 0.8. Writing the store at the end is a one-off per run and is
   reported on its own.
2. Memory: peak resident memory (sampled every 5 ms during collection and the store write) of a fresh process
   collecting `--tokens` and 4x as many from the same corpus (it must not grow with the corpus: the state is
   O(features x kept examples)).

    python bench/collect_throughput.py [--model smollm2-135m] [--expansion 8] [--k 32] [--tokens 4096]

Random skip transcoders on every layer of the model (bookkeeping cost does not depend on their quality, only on
the number of features and k); the corpus is the embedded demo corpus tokenised for the model.
"""
import argparse, json, subprocess, sys, tempfile, time
from pathlib import Path

def setup(a, tmp):
    import torch
    from r1_interp.models.registry import load_model, model_dims
    from r1_interp.transcoders.io import random_transcoders
    from r1_interp.models.corpus import tokenize_corpus, TokenCorpus
    torch.set_grad_enabled(False)
    model, tok = load_model(a.model)
    dims = model_dims(a.model)
    coders = random_transcoders(dims.d_model, dims.n_layers, expansion_factor=a.expansion, k=a.k, std=0.05)
    corpus = TokenCorpus(tokenize_corpus("demo", tok, Path(tmp)/"corpus", ctx_len=128, max_tokens=a.corpus_tokens or 4 * a.tokens))
    return model, tok, coders, corpus

def plain_pass(model, coders, corpus, n_tokens, batch_size):
    "The forward to the deepest layer and every encoder, batch by batch as `collect_features` reads them; nothing kept."
    import numpy as np, torch
    from r1_interp.features.collect import mlp_inputs
    idx = corpus.split("train")[:n_tokens // corpus.ctx_len]; layers = sorted(coders)
    t0 = time.perf_counter()
    for b in range(0, len(idx), batch_size):
        ids = torch.from_numpy(corpus.tokens[np.sort(idx[b:b + batch_size])].astype(np.int64))
        xs = mlp_inputs(model, ids, layers)
        for l in layers: coders[l].encode(xs[l].reshape(-1, xs[l].shape[-1]))
    return len(idx) * corpus.ctx_len / (time.perf_counter() - t0)

def collect(model, tok, coders, corpus, n_tokens, batch_size, out):
    from r1_interp.features.collect import collect_features
    t0 = time.perf_counter()
    collect_features(model, coders, corpus, out, n_tokens=n_tokens, batch_size=batch_size, tokenizer=tok, echo=lambda *_: None)
    total = time.perf_counter() - t0
    meta = json.loads((Path(out)/"meta.json").read_text())
    return meta["tokens"] / meta["seconds"], total - meta["seconds"]

def memory_child(a):
    "Resident memory sampled every 5 ms while collecting, after the model, coders and corpus are loaded."
    import threading, psutil
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, coders, corpus = setup(a, tmp)
        proc, peak, done = psutil.Process(), [0], threading.Event()
        base = proc.memory_info().rss
        def sample():
            while not done.is_set(): peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.005)
        th = threading.Thread(target=sample); th.start()
        try: collect(model, tok, coders, corpus, a.tokens, a.batch_size, Path(tmp)/"features")
        finally: done.set(); th.join()
        print(json.dumps(dict(loaded_mb=base / 2**20, peak_mb=peak[0] / 2**20)))

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m"); p.add_argument("--expansion", type=int, default=8); p.add_argument("--k", type=int, default=32)
    p.add_argument("--tokens", type=int, default=16384); p.add_argument("--batch-size", type=int, default=8); p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--memory-child", action="store_true"); p.add_argument("--corpus-tokens", type=int, default=None)
    a = p.parse_args()
    if a.memory_child: return memory_child(a)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok, coders, corpus = setup(a, tmp)
        F = next(iter(coders.values())).num_latents
        print(f"{a.model}: {len(coders)} layers x {F} features (k={a.k}), {a.tokens:,} tokens per run, batch {a.batch_size}")
        plain_pass(model, coders, corpus, 1024, a.batch_size)          # warm-up
        plains, colls, writes = [], [], []
        for r in range(a.repeats):
            plains.append(plain_pass(model, coders, corpus, a.tokens, a.batch_size))
            c, w = collect(model, tok, coders, corpus, a.tokens, a.batch_size, Path(tmp)/f"features{r}")
            colls.append(c); writes.append(w)
            print(f"  run {r}: plain pass {plains[-1]:.0f} tok/s, collection {colls[-1]:.0f} tok/s")
    ratio = max(colls) / max(plains)
    print(f"throughput: collection {max(colls):.0f} tok/s vs plain forward+encoders {max(plains):.0f} tok/s: ratio {ratio:.3f} "
          f"(bookkeeping {100 * (1 / ratio - 1):.1f}% of the plain pass; goal under 25%: {'met' if ratio >= 0.8 else 'NOT met'})")
    print(f"store written at the end of a run in {min(writes):.1f} s (once per run, not per token)")
    peaks = []
    for n in (a.tokens, 4 * a.tokens):
        out = subprocess.run([sys.executable, __file__, "--memory-child", "--model", a.model, "--expansion", str(a.expansion), "--k", str(a.k),
                              "--tokens", str(n), "--batch-size", str(a.batch_size), "--corpus-tokens", str(4 * a.tokens)], capture_output=True, text=True)
        if out.returncode: sys.exit(out.stderr[-3000:])
        m = json.loads(out.stdout.strip().splitlines()[-1]); peaks.append(m["peak_mb"])
        print(f"memory: {n:,} tokens: peak {m['peak_mb']:.0f} MB resident ({m['peak_mb'] - m['loaded_mb']:.0f} MB above the loaded model, coders and corpus)")
    print(f"peak memory ratio {4 * a.tokens:,} / {a.tokens:,} tokens: {peaks[1] / peaks[0]:.3f} (flat = does not grow with the corpus)")

if __name__ == "__main__": main()
