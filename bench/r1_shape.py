"""What each phase costs at DeepSeek-R1-Distill-Qwen-1.5B's real dimensions: measured time and peak memory next to first
principles (this machine's own matmul rate, measured in the same run), and what that says about the r1 preset's budgets.

Every phase runs through the library's own functions at R1's sizes (hidden 1,536, 28 layers, vocabulary 151,936, skip
transcoders at expansion 32 / k 64: 49,152 latents), each in its own subprocess so that its peak memory is its own:

- prepare: `tokenize_corpus` with the model's tokenizer: time per token, peak memory, bytes per token on disk.
- train: `train_transcoders` on `--layers` real-size coders fed by the full model's forward: each step timed from one
  start of the model's forward to the next (warm-up left out), the forward alone and the optimizer step timed apart so
  the per-coder part scales to 28; memory of the model and per coder with its optimizer state.
- summary: `evaluate_transcoders` as the train phase calls it (clean pass, per layer the transcoder, zero- and
  mean-ablation splices) and as the summary calls it (full replacement, all-MLPs mean ablation): time per eval token.
- collect: `collect_features` through `--layers` coders at the deepest layers (the forward runs all the way), its
  forward, encoders and bookkeeping timed apart so that the per-layer part scales to 28; memory of the kept examples
  (the state's own tensors) against the README's formula.
- label: API-bound (not measured); the offline heuristic labeller's time per feature on the collected store.
- graphs: circuit-tracer attribution (`load_replacement_model` + `attribute_prompt`) on a copy of the model cut to
  `--graph-layers` layers (same widths and vocabulary), short prompts, a small feature-node cap, and the variants
  `--graph-variants` (dtype, nnsight backend, lazy transcoder loading); extrapolated to 28 layers, prompts of 100 and
  600 tokens, 8,192 feature nodes, batch 256 (the scaling law is printed with the numbers).
- compare: `analyse_graph` (census + 1,000-sample layered null) per graph: the Haiku reference graph in shared/ and the
  graphs the graphs phase wrote.

Baseline, measured in the same run: the dense matmul rate at every shape the phases multiply (on cpu in fp32, what the
pipeline runs there; on cuda in bf16) and the memory bandwidth. A phase's first-principles time is the sum over its
matrix products of FLOPs / the rate measured at that shape (plus, where they dominate, bytes / bandwidth: the optimizer
step, circuit-tracer's backward hooks and influence updates); the ratio measured / first principles is printed and
flagged outside [0.5, 2]. Each timed phase measures the rates again just before it runs (machines are noisy), and on
cpu every time is this process's CPU seconds / torch's threads, so other processes on a shared machine do not count
(`--wall-clock` for the wall clock). Memory: first-principles bytes against the measured peak (resident memory sampled
every 5 ms; on cuda torch.cuda.max_memory_allocated). The README's own figures (FLOP counts, GB) are printed beside
ours. Extrapolations to the r1 preset's budgets (200M tokens per layer, 1M eval tokens, 10M collection tokens,
prompts of 100 and 600 tokens): on this device (first principles x the measured ratio) and on an A100 at the README's
assumption (125 TFLOP/s = 40% of 312, 1.5 TB/s; the same measured ratio; an estimate, not a measurement).

    python bench/r1_shape.py [--device cpu|cuda] [--phases baseline,prepare,train,summary,collect,label,graphs,compare]
        [--model r1-shape] [--layers 2] [--out r1_shape.json] [--work DIR]

The CPU defaults take about 11 minutes on 2 cores and up to ~12 GB (run nothing else heavy beside it). `--device cuda` (bf16, synchronized timings, CUDA memory stats)
needs nothing but the repository and the installed package: the model folder, corpora and random transcoders are made
on first use in `--work`, every line printed says what was measured, and the JSON is rewritten after each phase, so a
run killed part-way still reports the phases it finished. Its defaults are the r1 preset's batch shapes, 4 coders for
train/summary/collect and all 28 layers for graphs; on a short GPU lease:
`python bench/r1_shape.py --device cuda --phases train,summary,collect,graphs --graph-variants bf16-transformerlens`.
"""
import argparse, json, math, os, re, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HAIKU = HERE.parent.parent/"shared"/"data"/"graphs"/"haiku"/"capital-state-dallas.json"
ALL_PHASES = ("baseline", "prepare", "train", "summary", "collect", "label", "graphs", "compare")

# R1-Distill-Qwen-1.5B and the r1 preset (params/r1/*.yaml)
D, NL, V, DMLP, NH, NKV, DH = 1536, 28, 151_936, 8960, 12, 2, 128
EXP, K = 32, 64
F = D * EXP
P_LAYER = 2 * D * D + 2 * D * NKV * DH + 3 * D * DMLP          # q, o; k, v; gate, up, down (biases and norms: tiny)
P_MODEL = 2 * V * D + NL * P_LAYER                             # untied embedding and unembedding: 1.78B
P_CODER = 2 * D * F + D * D + F + D                            # encoder, decoder, skip, biases: 153M
R1 = dict(train_tokens=200e6, eval_tokens=1e6, collect_tokens=10e6, ctx=1024, train_batch=8, eval_batch=8,
          collect_batch=4, prompt_lengths=(100, 600), feature_nodes=8192, graph_batch=256, n_logits=10,
          labels=28_000, n_random=1000, compare_workers=8)
A100 = 312e12 * 0.40                                           # the README's assumption
GB = 1e9

# ---------------------------------------------------------------------------------------------------------------------
# First principles: FLOPs per shape ("bills"), and the bytes each phase holds

SHAPES = {"dd": (D, D), "dkv": (D, NKV * DH), "dmlp": (D, DMLP), "mlpd": (DMLP, D), "enc": (D, F), "head": (D, V)}
RATE_OF = {"attn": "dd", "sparse": "dd", "hook": "dd"}        # not plain matmuls: charged at the d x d rate

class Bill(dict):
    "FLOPs by matmul shape; + - and * by a number work key by key."
    def __add__(self, o): return Bill({k: self.get(k, 0) + o.get(k, 0) for k in {*self, *o}})
    def __sub__(self, o): return Bill({k: self.get(k, 0) - o.get(k, 0) for k in {*self, *o}})
    def __mul__(self, s): return Bill({k: v * s for k, v in self.items()})
    __rmul__ = __mul__
    @property
    def flops(self): return sum(self.values())
    def seconds(self, rates): return sum(v / rates[RATE_OF.get(k, k)] for k, v in self.items())

def layer_fwd(ctx):
    "One decoder layer, per token: q/o, k/v and MLP products; attention scores and mixing at average causal length."
    return Bill(dd=4 * D * D, dkv=4 * D * NKV * DH, dmlp=4 * D * DMLP, mlpd=2 * DMLP * D, attn=2 * ctx * D)
MLP = Bill(dmlp=4 * D * DMLP, mlpd=2 * DMLP * D)
HEAD = Bill(head=2 * D * V)
ENC = Bill(enc=2 * D * F)
CODER = ENC + Bill(dd=2 * D * D, sparse=2 * K * D)            # encode + skip + sparse decode, per token

def train_bill(ctx, n_coders):
    """Per token: the base model's forward (28 layers, no unembedding: sparsify feeds `model.base_model`) and, per
    coder, the encoder forward, its backward (sparse: sparsify's FusedEncoder adds k rows per token, no dense dW),
    the sparse decoder forward and backward, the skip forward and its dW."""
    per = ENC + Bill(dd=4 * D * D, sparse=8 * K * D)
    return layer_fwd(ctx) * NL + per * n_coders

def eval_bill(ctx, layers, per_layer:bool, full:bool):
    """Per eval token, `evaluate_transcoders` with baselines: a mean pass (no unembedding), the clean pass and either
    per layer l the coder's statistics and 3 splices run from layer l on (transcoder, zero, mean), or the full
    replacement and the all-MLPs mean ablation."""
    b = layer_fwd(ctx) * NL + layer_fwd(ctx) * NL + HEAD
    if per_layer:
        for l in layers:
            rest = layer_fwd(ctx) * (NL - l) + HEAD
            b = b + CODER + Bill(dd=2 * D * D) + (rest + CODER - MLP) + (rest - MLP) * 2
    if full:
        n = len(layers)
        b = b + layer_fwd(ctx) * NL + HEAD + (CODER - MLP) * n + layer_fwd(ctx) * NL + HEAD - MLP * n
    return b

def collect_bill(ctx, deepest, n_coders):
    "Per token: the forward up to the deepest layer's MLP input, and every coder's encoder."
    attn_only = layer_fwd(ctx) - MLP
    return layer_fwd(ctx) * deepest + attn_only + ENC * n_coders

def graph_shape(n, L, N, nl=10):
    "Active features A (k per position but the zeroed BOS), the edge matrix's columns, and its rows."
    A = L * K * (n - 1)
    return A, A + (L + 1) * n + nl, min(N, A) + nl

def graph_bill(n, L, N, B, nl=10):
    """Per prompt of n tokens: the setup forward (with unembedding and every encoder), the forward of B copies (MLPs
    run, plus each skip), and ceil(nl/B) + ceil(N/B) backward passes of B copies through the linear paths only (per
    token and layer: v, o and skip products and the attention mixing; attention patterns, norms and MLPs are
    frozen)."""
    A, _, _ = graph_shape(n, L, N, nl)
    setup = (layer_fwd(n) * L + HEAD + CODER * L) * n
    fwd = (layer_fwd(n) * L + Bill(dd=2 * D * D) * L) * (B * n)
    bwd = Bill(dd=4 * D * D, dkv=2 * D * NKV * DH, attn=2 * n * D) * (B * n * L)
    return setup + fwd + bwd * graph_batches(n, L, N, B, nl)

def graph_batches(n, L, N, B, nl=10):
    return math.ceil(nl / B) + math.ceil(min(N, graph_shape(n, L, N, nl)[0]) / B)

def hook_bytes(n, L, N, B, s, nl=10):
    """Bytes circuit-tracer's backward hooks move per prompt: at every layer of every backward pass they gather the
    gradient at each active feature's position into a (B, features, d) tensor (k features per position, plus one
    error row per position), copy it for the batched product and read it there: ~3 passes, memory-bound."""
    return graph_batches(n, L, N, B, nl) * 3 * B * (K * (n - 1) + n) * D * s * L

def influence_bytes(n, L, N, B, nl=10):
    """Matrix bytes circuit-tracer's influence updates read: one call per 4 x B features, each copying the rows so far
    (fp32) to the device and running one vector-matrix product per graph level (about L + 1 levels, plus ~3 passes for
    the copy, abs and row normalisation)."""
    A, cols, rows = graph_shape(n, L, N, nl)
    N = rows - nl
    st = [nl + u * 4 * B for u in range(math.ceil(N / (4 * B)))]
    return sum(st) * cols * 4 * (L + 1 + 3)

def graph_memory(n, L, N, B, s, coder_s=None, lazy=False, nl=10):
    """Bytes of one attribution (s: bytes per value of the model's dtype): weights; the forward's autograd cache (each
    layer's attention pattern B x heads x n x n, kept for the backward through the frozen pattern, and the cached MLP
    inputs); encoder and decoder rows of the active features; the edge matrix (fp32, host) and the influence update's
    copy of it; the final square adjacency."""
    coder_s = coder_s or s
    A, cols, rows = graph_shape(n, L, N, nl)
    Nn = rows - nl
    m = dict(weights=(2 * V * D + L * P_LAYER) * s + L * (D * D + F + D + (0 if lazy else 2 * D * F)) * coder_s,
             patterns=L * B * NH * n * n * s, resid=(L + 1) * B * n * D * s, feature_vecs=2 * A * D * s,
             edge_matrix=rows * cols * 4, influence_copy=rows * cols * 4,
             adjacency=(Nn + (L + 1) * n + nl) ** 2 * 4 + rows * (Nn + (L + 1) * n + nl) * 4,
             hook_gather=2 * B * K * n * D * s)                     # one layer's gathered gradients and their copy
    return m

DEVICE_TERMS = ("weights", "patterns", "resid", "feature_vecs", "influence_copy", "hook_gather")

def graph_seconds(n, L, N, B, s, rates, bw):
    "First-principles seconds of one attribution here: matmuls at the measured rates, hook and influence bytes."
    return dict(matmuls=graph_bill(n, L, N, B).seconds(rates), hooks=hook_bytes(n, L, N, B, s) / bw,
                influence=influence_bytes(n, L, N, B) / bw)

def graph_seconds_a100(n, L, N, B, s):
    """The same on an A100 at the README's assumption (125 TFLOP/s), 1.5 TB/s of HBM, and ~12 GB/s for the influence
    update's copies of the host's edge matrix to the GPU."""
    one_pass = influence_bytes(n, L, N, B) / (L + 4)
    return dict(matmuls=graph_bill(n, L, N, B).flops / A100, hooks=hook_bytes(n, L, N, B, s) / 1.5e12,
                influence=one_pass / 12e9 + influence_bytes(n, L, N, B) / 1.5e12)

README = dict(   # README "What the r1 preset costs, from first principles", as written there
    train=dict(flops_per_token=lambda n_coders: 2 * 1.78e9 + n_coders * 3 * 2 * D * F, hours=7,
               memory=lambda n_coders: 3.6e9 + 12 * P_CODER * n_coders),
    summary=dict(flops_per_token=lambda n_coders: (n_coders + 2) * 2 * 1.78e9, hours=0.25,
                 memory=lambda n_coders: 3.6e9 + 2 * P_CODER * n_coders + 8 * 1024 * V * 4),
    collect=dict(flops_per_token=lambda n_coders: 3.6e9 + n_coders * 1.5e8, hours=1.0,
                 state=lambda n_coders: n_coders * F * 60 * (21 * 2 + 24)),
    prepare=dict(tokens_per_s=(200e6 / (30 * 60), 200e6 / (10 * 60)), disk_bytes_per_token=4),
    graphs=dict(memory_edge={100: 5.9e9, 600: 35e9}, memory_weights=12e9, minutes_per_prompt=(1, 10), hours=(2, 4)),
    label=dict(dollars=250), compare=dict(note="minutes on 8 cores"))

# ---------------------------------------------------------------------------------------------------------------------
# Measuring

def rss():
    import psutil
    return psutil.Process().memory_info().rss

class Peak:
    """Peak memory while the block runs: resident set sampled every 5 ms (the host), and on cuda the allocator's peak
    (`dev_*`). `.above` is the peak over what was there when the block began."""
    def __init__(self, device="cpu"): self.cuda = str(device).startswith("cuda")
    def __enter__(self):
        import gc; gc.collect()
        if self.cuda:
            import torch
            torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
            self.dev_base = torch.cuda.memory_allocated()
        self.base = self.peak = rss(); self._stop = threading.Event()
        self._t = threading.Thread(target=self._sample, daemon=True); self._t.start()
        self.t0, self.w0 = now(), time.perf_counter()
        return self
    def _sample(self):
        while not self._stop.is_set(): self.peak = max(self.peak, rss()); self._stop.wait(0.005)
    def __exit__(self, *exc):
        if self.cuda:
            import torch
            torch.cuda.synchronize(); self.dev_peak = torch.cuda.max_memory_allocated()
        self.seconds, self.wall = now() - self.t0, time.perf_counter() - self.w0
        self._stop.set(); self._t.join(); self.end = rss(); self.peak = max(self.peak, self.end)
        self.kept = (torch_allocated() - self.dev_base) if self.cuda else (self.end - self.base)
    @property
    def above(self): return (self.dev_peak - self.dev_base) if self.cuda else (self.peak - self.base)
    @property
    def total(self): return self.dev_peak if self.cuda else self.peak

def torch_allocated():
    import torch
    return torch.cuda.memory_allocated()

CLOCK = dict(cpu=False, threads=1)

def now():
    """The measuring clock: on cpu, this process's CPU seconds / torch's threads (what an idle machine's wall clock
    would show: other processes on a shared machine do not count), else (cuda, or --wall-clock) the wall clock."""
    return time.process_time() / CLOCK["threads"] if CLOCK["cpu"] else time.perf_counter()

def sync(device):
    if str(device).startswith("cuda"):
        import torch; torch.cuda.synchronize()

def say(*a): print(*a, flush=True)

def result(d): print("RESULT " + json.dumps(d), flush=True)

def model_dtype(a):
    import torch
    return torch.bfloat16 if a.device.startswith("cuda") else torch.float32

def load(a, name=None):
    "The model as the pipeline loads it (`load_model`: fp32 on cpu, bf16 on cuda), its load time and memory."
    from r1_interp.models.registry import load_model
    with Peak(a.device) as p: model, tok = load_model(name or a.model, device=a.device)
    say(f"  model {name or a.model} loaded in {p.seconds:.0f}s: {p.kept / GB:.2f} GB kept, {p.above / GB:.2f} GB at "
        f"the load's peak ({'device' if p.cuda else 'resident'}), dtype {next(model.parameters()).dtype}")
    return model, tok, p

def corpus(a, tok, ctx, tokens, what="corpus"):
    "A tokenised slice of the demo corpus in --work (made on first use, reused after)."
    from r1_interp.models.corpus import tokenize_corpus, TokenCorpus
    from r1_interp.models.registry import end_of_text_id
    try: sep = end_of_text_id(tok, a.model)
    except Exception: sep = None
    return TokenCorpus(tokenize_corpus("demo", tok, Path(a.work)/f"{what}-{a.model}-{ctx}", ctx_len=ctx,
                                       max_tokens=tokens, eval_fraction=0.2, separator=sep))

def random_coders(layers, device, std=0.02):
    "{layer: SparseCoder} real-size random skip transcoders (cost does not depend on what they learned)."
    from r1_interp.transcoders.io import random_transcoders
    return {l: random_transcoders(D, 1, EXP, K, std=std, seed=l)[0].to(device) for l in layers}

# ---------------------------------------------------------------------------------------------------------------------
# The phases (each runs in its own process: `--child PHASE`)

def measure_rates(a, seconds=None, echo=say, dtype=None):
    """Dense matmul rate at every shape the phases multiply (`--rows` rows: tokens per call) in the pipeline's dtype,
    and memory bandwidth (x += y). Machines are noisy: each timed phase measures them again just before it runs."""
    import torch
    dt = dtype or model_dtype(a); dev = a.device; M = a.rows; seconds = seconds or a.rate_seconds
    def rate(fn, work):
        fn(); sync(dev)
        t0, c0, r = time.perf_counter(), now(), 0
        while time.perf_counter() - t0 < seconds: fn(); r += 1; sync(dev)
        return work * r / (now() - c0)
    rates = {}
    for name, (k, n) in SHAPES.items():
        x, w = torch.randn(M, k, dtype=dt, device=dev), torch.randn(k, n, dtype=dt, device=dev)
        rates[name] = rate(lambda x=x, w=w: x @ w, 2 * M * k * n)
    n = (256 if not dev.startswith("cuda") else 2048) * 2**20 // 4
    x, y = torch.randn(n, device=dev), torch.randn(n, device=dev)
    bw = rate(lambda x=x, y=y: x.add_(y), 3 * 4 * n)                # read x, read y, write x
    echo(f"  rates ({str(dt).removeprefix('torch.')}, {M} rows): "
         + ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in rates.items()) + f" GFLOP/s; bandwidth {bw / 1e9:.1f} GB/s")
    return rates, bw

def child_baseline(a):
    "The rates on their own, before the phases (`measure_rates`)."
    for name, (k, n) in SHAPES.items(): say(f"  {name:5s}: ({a.rows} x {k}) @ ({k} x {n})")
    rates, bw = measure_rates(a)
    result(dict(rates=rates, bandwidth=bw, dtype=str(model_dtype(a)), rows=a.rows))

def child_prepare(a):
    "Tokenising the demo corpus with the model's tokenizer, as `run_prepare` does (ctx 1024, eval 1%)."
    from transformers import AutoTokenizer
    from r1_interp.models.registry import resolve_model_path, end_of_text_id
    from r1_interp.models.corpus import tokenize_corpus
    with Peak() as pl: tok = AutoTokenizer.from_pretrained(resolve_model_path(a.model))
    say(f"  tokenizer: {type(tok).__name__}, {len(tok):,} tokens, loaded in {pl.seconds:.1f}s")
    out = Path(a.work)/"prepare"; shutil.rmtree(out, ignore_errors=True)
    try: sep = end_of_text_id(tok, a.model)
    except Exception: sep = None
    with Peak() as p:
        tokenize_corpus("demo", tok, out, ctx_len=1024, max_tokens=a.prepare_tokens, eval_fraction=0.01, separator=sep)
    meta = json.loads((out/"meta.json").read_text())
    disk = (out/"tokens.bin").stat().st_size
    say(f"  {meta['n_tokens']:,} tokens ({meta['n_docs']:,} documents, {meta['n_chars']:,} characters) in "
        f"{p.seconds:.1f}s: {meta['n_tokens'] / p.seconds:,.0f} tokens/s; peak {p.peak / GB:.2f} GB resident "
        f"({p.above / GB:.2f} above the loaded tokenizer); {disk / meta['n_tokens']:.1f} B per token on disk")
    result(dict(tokens=meta["n_tokens"], seconds=p.seconds, peak=p.peak, above=p.above,
                disk_bytes_per_token=disk / meta["n_tokens"], tokenizer_vocab=len(tok), cores=os.cpu_count()))

def child_train(a):
    """A few steps of `train_transcoders` on the deepest `--layers` layers, each step timed from one start of the
    model's forward (sparsify runs it once per step) to the next; then the forward alone on a batch of the same shape,
    so the coders' part (encoders, decoders, their backward, the optimizer) is measured apart."""
    import torch
    from r1_interp.models.settings import TrainConfig
    from r1_interp.transcoders.train import train_transcoders
    model, tok, pl = load(a)
    rates, bw = measure_rates(a, 0.5)
    layers = tuple(range(NL - a.layers, NL))
    ctx, batch = a.ctx, a.train_batch
    c = corpus(a, tok, ctx, ctx * batch * (a.train_steps + 2) * 2)
    tokens = ctx * batch * a.train_steps
    cfg = TrainConfig(model=a.model, layers=layers, transcoder=dict(expansion_factor=EXP, k=K),
                      tokens_per_layer=tokens, batch_size=batch, save_every=10**6)
    say(f"  training {len(layers)} coders (layers {list(layers)}) x {F:,} latents, {a.train_steps} steps of "
        f"{batch} x {ctx} tokens")
    out = Path(a.work)/"train"; shutil.rmtree(out, ignore_errors=True)
    starts, opt_times = [], []
    def start(*_):                                                  # must return None (a value would replace args)
        sync(a.device); starts.append(now())
    h = model.base_model.register_forward_pre_hook(start)
    from schedulefree import ScheduleFreeWrapper as SF             # the signum optimizer's wrapper (r1's optimizer)
    orig = SF.step, SF.zero_grad
    def timed(fn):
        def f(*args, **kw):
            sync(a.device); t0 = now(); out = fn(*args, **kw); sync(a.device); opt_times.append(now() - t0)
            return out
        return f
    SF.step, SF.zero_grad = timed(orig[0]), timed(orig[1])
    try:
        with Peak(a.device) as p:
            train_transcoders(cfg, c.path, out, "bench", model=model, rebuild=True, echo=lambda *_: None)
    finally: h.remove(); SF.step, SF.zero_grad = orig
    steps = [t1 - t0 for t0, t1 in zip(starts[:-1], starts[1:])]
    timed_steps = steps[2:] or steps[-1:]    # sparsify's dummy forward (widths), then the first step (warm-up)
    per_step = sorted(timed_steps)[len(timed_steps) // 2]
    opt = [x + y for x, y in zip(opt_times[0::2], opt_times[1::2])]    # step + zero_grad, per training step
    opt_step = sorted(opt[1:] or opt)[len(opt[1:] or opt) // 2] if opt else 0.0
    ids = torch.from_numpy(c.chunks("train", batch).astype("int64")).to(a.device)
    fwd = []
    with torch.no_grad():
        for _ in range(3):
            sync(a.device); t0 = now(); model.base_model(ids); sync(a.device)
            fwd.append(now() - t0)
    fwd = min(fwd[1:])
    ntok = batch * ctx
    say(f"  step times {['%.2f' % s for s in steps]} s (the first two: sparsify's width probe, warm-up); median "
        f"{per_step:.2f} s = "
        f"{1e3 * per_step / ntok:.2f} ms per token; the forward alone {fwd:.2f} s; the optimizer step (+ zero_grad) "
        f"{opt_step:.2f} s for {len(layers)} coders; so each coder's per-token work (encoder, decoder, backward, "
        f"hooks) takes {1e3 * (per_step - fwd - opt_step) / ntok / len(layers):.2f} ms per token; whole call "
        f"{p.seconds:.0f}s (with the final checkpoint save)")
    say(f"  peak {p.total / GB:.2f} GB ({'device' if p.cuda else 'resident'}): model {pl.kept / GB:.2f} GB kept "
        f"({pl.above / GB:.2f} at load), +{p.above / GB:.2f} GB training = {p.above / len(layers) / GB:.2f} GB per "
        "coder")
    result(dict(rates=rates, bandwidth=bw, layers=list(layers), ctx=ctx, batch=batch, step_seconds=steps,
                per_token=per_step / ntok, forward_per_token=fwd / ntok, optimizer_step=opt_step / len(layers),
                coder_per_token=(per_step - fwd - opt_step) / ntok / len(layers), model_bytes=pl.kept,
                model_load_peak=pl.above,
                above=p.above, peak=p.total, call_seconds=p.seconds))

def child_summary(a):
    """`evaluate_transcoders` as the summary calls it (full replacement + all-MLPs mean ablation; first run as warm-up)
    and as the train phase calls it (per-layer splices with zero and mean ablation, feature counts)."""
    import torch
    from r1_interp.transcoders.evaluate import evaluate_transcoders
    torch.set_grad_enabled(False)
    model, tok, pl = load(a)
    rates, bw = measure_rates(a, 0.5)
    layers = sorted({max(0, min(NL - 1, round(NL * (i + 0.5) / a.layers))) for i in range(a.layers)})
    coders = random_coders(layers, a.device)
    c = corpus(a, tok, a.ctx, a.ctx * a.eval_batch * 8)
    batches = list(c.batches("eval", a.eval_batch, limit=a.eval_batch))
    n_tok = sum(b.numel() for b in batches)
    say(f"  {len(layers)} coders at layers {layers}; {len(batches)} batch of {a.eval_batch} x {a.ctx} tokens")
    kw = dict(excluded_ids=c.excluded_ids)
    evaluate_transcoders(model, coders, batches, baselines=True, per_layer_splices=False, **kw)   # warm-up
    with Peak(a.device) as pf:
        evaluate_transcoders(model, coders, batches, baselines=True, per_layer_splices=False, **kw)
    say(f"  summary's call (full replacement, all-MLPs mean ablation): {pf.seconds:.1f}s = "
        f"{1e3 * pf.seconds / n_tok:.1f} ms per eval token; peak +{pf.above / GB:.2f} GB over model and coders")
    with Peak(a.device) as pp:
        evaluate_transcoders(model, coders, batches, full_replacement=False, return_counts=True, **kw)
    say(f"  train phase's call (per layer: transcoder, zero and mean splices): {pp.seconds:.1f}s = "
        f"{1e3 * pp.seconds / n_tok:.1f} ms per eval token; peak +{pp.above / GB:.2f} GB")
    result(dict(rates=rates, bandwidth=bw, layers=layers, ctx=a.ctx, batch=a.eval_batch, tokens=n_tok,
                full_seconds=pf.seconds,
                per_layer_seconds=pp.seconds, full_above=pf.above, per_layer_above=pp.above, model_bytes=pl.kept,
                peak=max(pf.total, pp.total)))

def child_collect(a):
    """`collect_features` on the deepest `--layers` layers, with its forward (`mlp_inputs`), the coders' encoders and
    the bookkeeping (`update_layer_state`) timed apart by wrapping them (the same calls, in the same order)."""
    import numpy as np, torch
    import r1_interp.features.collect as col
    torch.set_grad_enabled(False)
    model, tok, pl = load(a)
    rates, bw = measure_rates(a, 0.5)
    layers = list(range(NL - a.layers, NL))
    with Peak(a.device) as pc: coders = random_coders(layers, a.device)
    ctx, B, nb = a.collect_ctx, a.collect_batch, a.collect_batches
    c = corpus(a, tok, ctx, ctx * B * (nb + 2) * 2, "collect")
    times = dict(forward=[], encode=[], book=[], store=[])
    def timed(fn, key):
        def f(*args, **kw):
            sync(a.device); t0 = now(); out = fn(*args, **kw); sync(a.device)
            times[key].append(now() - t0); return out
        return f
    orig = col.mlp_inputs, col.update_layer_state, col.write_feature_store
    col.mlp_inputs, col.update_layer_state = timed(orig[0], "forward"), timed(orig[1], "book")
    col.write_feature_store = timed(orig[2], "store")
    for cd in coders.values(): cd.encode = timed(cd.encode, "encode")
    out = Path(a.work)/"features"; shutil.rmtree(out, ignore_errors=True)
    say(f"  collecting {nb} batches of {B} x {ctx} tokens through {len(layers)} coders (layers {layers}), "
        f"n_top 20, n_sample 40, n_pool 512")
    try:
        with Peak(a.device) as p:
            col.collect_features(model, coders, c, out, n_tokens=ctx * B * nb, batch_size=B, n_top=20, n_sample=40,
                                 n_pool=512, tokenizer=tok, echo=lambda *_: None, save_every=10**6)
    finally: col.mlp_inputs, col.update_layer_state, col.write_feature_store = orig
    L = len(layers)
    per_batch = lambda key, per: [sum(times[key][i * per:(i + 1) * per]) for i in range(nb)]
    fw, en, bk = per_batch("forward", 1), per_batch("encode", L), per_batch("book", L)
    med = lambda x: float(np.median(x[1:] if len(x) > 1 else x))       # the first batch warms up
    tok_b = B * ctx
    say(f"  per batch (first left out as warm-up): forward {med(fw):.2f}s, encoders {med(en):.2f}s, bookkeeping "
        f"{med(bk):.2f}s; store written in {sum(times['store']):.1f}s (once per run)")
    st = col.new_layer_state(F, 20, 40, 21)
    state = sum(t.nbytes for v in st.values() for t in (v.values() if isinstance(v, dict) else [v]))
    state += 512 * F * 2                                                # the pool's maxima (fp16), once full
    say(f"  a layer's kept-example state: {state / GB:.3f} GB (README's formula: {F * 60 * 66 / GB:.3f} GB); peak "
        f"+{p.above / GB:.2f} GB over model and coders ({(p.above) / L / GB:.2f} GB per layer incl. scratch)")
    result(dict(rates=rates, bandwidth=bw, layers=layers, ctx=ctx, batch=B, batches=nb, forward=med(fw) / tok_b,
                encode=med(en) / tok_b / L,
                book=med(bk) / tok_b / L, store_seconds=sum(times["store"]), state_bytes=state,
                above=p.above, coders_bytes=pc.kept, model_bytes=pl.kept, peak=p.total))

def child_label(a):
    "The offline heuristic labeller on the features of the store the collect phase wrote (contexts read + label)."
    from r1_interp.features.collect import FeatureStore
    from r1_interp.features.labels import HeuristicLabeller, feature_contexts, features_to_label
    folder = Path(a.work)/"features"
    if not (folder/"meta.json").exists(): return result(dict(skipped=f"no feature store in {folder}: run collect"))
    store = FeatureStore(folder); lab = HeuristicLabeller(); layer = store.layers[-1]
    feats = features_to_label(store, layer, min_frequency=0.0, max_features=a.label_features)
    t0 = now()
    ctxs = feature_contexts(store, layer, feats, "top", n=20)
    t_read = now() - t0; t0 = now()
    for f in feats: lab.label(layer, f, ctxs.get(f, []))
    t_lab = now() - t0
    per = (t_read + t_lab) / max(1, len(feats))
    say(f"  {len(feats)} features of layer {layer}: contexts read in {t_read:.2f}s, labelled in {t_lab:.2f}s: "
        f"{1e3 * per:.2f} ms per feature")
    result(dict(features=len(feats), read_seconds=t_read, label_seconds=t_lab, per_feature=per))

def cut_model(a, n_layers):
    "A folder holding the model's first `n_layers` decoder layers (same widths, vocabulary, tokenizer), made once."
    from safetensors import safe_open
    from safetensors.torch import save_file
    from r1_interp.models.registry import resolve_model_path
    src = Path(resolve_model_path(a.model)); cfg = json.loads((src/"config.json").read_text())
    if n_layers >= cfg["num_hidden_layers"]: return str(src)
    dst = Path(a.work)/f"{a.model}-{n_layers}l"
    if (dst/"config.json").exists(): return str(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp"); shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    keep = {}
    for f in sorted(src.glob("*.safetensors")):
        with safe_open(str(f), "pt") as s:
            for k in s.keys():
                m = re.match(r"model\.layers\.(\d+)\.", k)
                if m is None or int(m.group(1)) < n_layers: keep[k] = s.get_tensor(k)
    save_file(keep, str(tmp/"model.safetensors"), metadata={"format": "pt"})
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name not in ("config.json", "model.safetensors.index.json"):
            shutil.copy(f, tmp/f.name)
    cfg.update(num_hidden_layers=n_layers, max_window_layers=min(cfg.get("max_window_layers", n_layers), n_layers))
    if isinstance(cfg.get("layer_types"), list): cfg["layer_types"] = cfg["layer_types"][:n_layers]
    (tmp/"config.json").write_text(json.dumps(cfg, indent=1))
    os.replace(tmp, dst)
    return str(dst)

TEXT = ("Problem: a snail climbs 3 meters up a 10 meter well each day and slides back 2 meters each night. On which "
        "day does it reach the top? Solution: after each full day and night it is 1 meter higher, so ") * 40

def lazy_loader():
    """`load_circuit_tracer_set` with circuit-tracer's lazy_encoder/lazy_decoder on, for an r1_interp whose
    `load_replacement_model` has no `lazy_transcoders` yet."""
    import torch, yaml
    from circuit_tracer.utils.hf_utils import load_transcoders as ct_load
    from r1_interp.transcoders.io import ReLUTopK, transcoder_set_files
    def load(folder, device="cpu", dtype=torch.float32, **_):
        folder = Path(folder).resolve(); cfg = yaml.safe_load((folder/"config.yaml").read_text())
        files = transcoder_set_files(folder, cfg)
        cfg = dict(cfg, model_kind="transcoder_set", transcoders=[str(files[l]) for l in sorted(files)])
        ts = ct_load(cfg, device=torch.device(device), dtype=dtype, lazy_encoder=True, lazy_decoder=True)
        for t in ts: t.activation_function = ReLUTopK(cfg["k"])
        return ts
    return load

def saved_bytes(root_fns, skip_ptrs):
    "Bytes of the tensors autograd keeps for the backward below `root_fns` (weights in `skip_ptrs` left out)."
    import torch
    seen, ptrs, total, stack = set(), set(), 0, list(root_fns)
    while stack:
        f = stack.pop()
        if f is None or id(f) in seen: continue
        seen.add(id(f))
        for name in dir(f):
            if not name.startswith("_saved_"): continue
            try: v = getattr(f, name)
            except Exception: continue
            if isinstance(v, torch.Tensor) and v.data_ptr() not in skip_ptrs | ptrs:
                ptrs.add(v.data_ptr()); total += v.numel() * v.element_size()
        stack.extend(nf for nf, _ in f.next_functions)
    return total

def forward_cache_check(a, rm, dtype):
    """What circuit-tracer's forward of B copies keeps for the backward, at a length where the attention patterns
    (B x heads x n^2 per layer) outweigh the cached inputs (B x n x d per layer): the tensors autograd saved (found by
    walking the graph), against the patterns term."""
    import torch
    from r1_interp.graphs.attribution import prompt_ids
    n, B, L = a.cache_check, 8, a.graph_layers
    ids = prompt_ids(TEXT, rm.tokenizer)[:n].to(a.device)
    s = torch.finfo(dtype).bits // 8
    ctx = rm.setup_attribution(ids)
    rm.run_forward_pass(ids, B, ctx); sync(a.device)
    weights = {p.data_ptr() for p in rm.parameters()}
    saved = saved_bytes([t.grad_fn for t in ctx._resid_activations if t is not None], weights)
    cached = sum(t.numel() * t.element_size() for t in ctx._resid_activations if t is not None)
    del ctx
    pat, res = L * B * NH * n * n * s, (L + 1) * B * n * D * s
    say(f"  forward cache at {n} tokens x {B} copies: autograd keeps {saved / GB:.3f} GB for the backward vs the "
        f"attention patterns {pat / GB:.3f} GB ({ratio_text(saved, pat)[1]}); cached inputs {cached / GB:.3f} GB vs "
        f"{res / GB:.3f} GB")
    return dict(n=n, batch=B, saved=saved, patterns=pat, cached=cached, resid=res)

def child_graphs(a):
    """Attribution on the model cut to `--graph-layers` layers, variant `--variant` (dtype-backend[-lazy]), one prompt
    per length in `--graph-lengths`; circuit-tracer's own phase timings are read from its verbose log, and its influence
    updates (`compute_partial_influences`) are timed with the bytes they read."""
    import inspect, io, logging, torch
    import circuit_tracer.attribution.attribute as ca
    import r1_interp.graphs.replacement as rep
    from r1_interp.transcoders.io import export_circuit_tracer
    from r1_interp.graphs.attribution import attribute_prompt, prompt_ids, graph_to_json, write_graph_json
    dtype_name, backend, *rest = a.variant.split("-")
    lazy = "lazy" in rest
    dtype = dict(fp32=torch.float32, bf16=torch.bfloat16)[dtype_name]
    L = a.graph_layers
    folder = cut_model(a, L)
    ct = Path(a.work)/f"ct-{a.model}-{L}l"
    if not (ct/"config.yaml").exists():
        t0 = time.perf_counter()
        export_circuit_tracer(random_coders(range(L), "cpu"), ct, folder, n_layers=L)
        say(f"  exported {L} random real-size transcoders in {time.perf_counter() - t0:.0f}s")
    kw = {}
    if lazy and "lazy_transcoders" in inspect.signature(rep.load_replacement_model).parameters:
        kw["lazy_transcoders"] = True
    elif lazy: rep.load_circuit_tracer_set = lazy_loader()
    with Peak(a.device) as pl:
        rm = rep.load_replacement_model(folder, ct, backend=backend, device=a.device, dtype=dtype, **kw)
    say(f"  {a.variant}: {L}-layer replacement model loaded in {pl.seconds:.0f}s: {pl.kept / GB:.2f} GB kept, "
        f"{pl.above / GB:.2f} GB at the load's peak ({'device' if pl.cuda else 'resident'}; host peak "
        f"{pl.peak / GB:.2f} GB)")
    rates, bw = measure_rates(a, 0.5, dtype=dtype)
    infl = []
    orig = ca.compute_partial_influences
    def timed(edge, *args, **kw):
        sync(a.device); t0 = now(); out = orig(edge, *args, **kw); sync(a.device)
        infl.append((now() - t0, edge.numel() * 4)); return out
    ca.compute_partial_influences = timed
    # warm-up: the first attribution touches the memory-mapped weights and allocates what every later one reuses
    attribute_prompt(rm, prompt_ids(TEXT, rm.tokenizer)[:min(a.graph_lengths)], max_n_logits=10,
                     batch_size=a.graph_batch, max_feature_nodes=min(64, a.graph_nodes))
    cache = forward_cache_check(a, rm, dtype) if a.graph_json and a.cache_check else None
    rows = []
    for n in a.graph_lengths:
        ids = prompt_ids(TEXT, rm.tokenizer)[:n]
        infl.clear(); log = io.StringIO(); err = sys.stderr; sys.stderr = log   # circuit-tracer logs to stderr
        logging.getLogger("attribution").handlers.clear()
        try:
            with Peak(a.device) as p:
                g, wall = attribute_prompt(rm, ids, max_n_logits=10, batch_size=a.graph_batch,
                                           max_feature_nodes=a.graph_nodes, verbose=True)
            secs = p.seconds
        finally: sys.stderr = err
        phases = {k: float(v) for k, v in re.findall(r"(\w[\w ]*?) completed in ([\d.]+)s", log.getvalue())}
        it = dict(seconds=sum(t for t, _ in infl), bytes=sum(b for _, b in infl), calls=len(infl))
        r = dict(n=n, seconds=secs, above=p.above, peak=p.total, host_peak=p.peak, host_above=p.peak - p.base,
                 active=int(len(g.active_features)), selected=int(len(g.selected_features)),
                 nodes=int(g.adjacency_matrix.shape[0]), phases=phases, influence=it)
        rows.append(r)
        say(f"  {n} tokens: {secs:.1f}s ({', '.join(f'{k.lower()} {v:.1f}' for k, v in phases.items())}; influence "
            f"{it['seconds']:.2f}s over {it['bytes'] / GB:.2f} GB in {it['calls']} calls); peak +{p.above / GB:.2f} "
            f"GB {'device' if p.cuda else 'resident'}; {r['active']:,} active features, {r['selected']} selected")
        if a.graph_json and n == a.graph_lengths[-1]:
            d = graph_to_json(g, f"bench-{n}", rm.tokenizer)
            write_graph_json(d, Path(a.work)/"graphs"/f"bench-{a.variant}-{n}.json")
        del g
    result(dict(rates=rates, bandwidth=bw, variant=a.variant, layers=L, batch=a.graph_batch, nodes=a.graph_nodes,
                load_seconds=pl.seconds, load_kept=pl.kept, cache_check=cache,
                load_above=pl.above, rows=rows))

def child_compare(a):
    "`analyse_graph` (census, layered null of 1,000 samples, configuration-null profile) on every graph at hand."
    from r1_interp.motifs.compare import analyse_graph
    paths = ([HAIKU] if HAIKU.exists() else []) + sorted((Path(a.work)/"graphs").glob("*.json"))
    if not paths: return result(dict(skipped="no graph: neither the Haiku reference nor a graphs-phase graph"))
    t0 = now(); analyse_graph(paths[0], "layered", 4); jit = now() - t0
    say(f"  numba compile / cache load on the first call: {jit:.1f}s (once per process)")
    rows = []
    for pth in paths:
        t0 = now(); r = analyse_graph(pth, "layered", a.n_random, 0); s = now() - t0
        rows.append(dict(graph=pth.name, nodes=r.n_nodes, edges=r.n_edges, seconds=s))
        say(f"  {pth.name}: {r.n_nodes} nodes, {r.n_edges} edges: {s:.1f}s for {a.n_random} layered samples "
            f"(+ the configuration profile)")
    result(dict(rows=rows, jit=jit, n_random=a.n_random, cores=os.cpu_count()))

# ---------------------------------------------------------------------------------------------------------------------
# The parent: runs each phase in its own process, then compares and extrapolates

def ratio_text(measured, predicted):
    r = measured / predicted if predicted else float("nan")
    flag = "" if 0.5 <= r <= 2 else "   <-- OUTSIDE [0.5, 2]"
    return r, f"ratio {r:.2f}{flag}"

def dur(s):
    if s != s: return "n/a"
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n: return f"{s / n:.1f} {unit}"
    return f"{s:.1f} s"

def run_child(a, phase, extra=()):
    args = [sys.executable, __file__, "--child", phase] + a.passthrough + list(extra)   # extra: the last word
    say(f"\n== {phase}" + (f" {' '.join(extra)}" if extra else ""))
    errf = Path(a.work)/f"{phase}.stderr"
    with open(errf, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        res = None
        for line in proc.stdout:
            if line.startswith("RESULT "): res = json.loads(line[7:])
            else: print(line, end="", flush=True)
        proc.wait()
    if proc.returncode or res is None:
        tail = errf.read_text()[-2500:]
        say(f"  FAILED (exit {proc.returncode}); stderr ends:\n{tail}")
        return dict(failed=f"exit {proc.returncode}: {tail[-600:]}")
    return res

def own_rates(t, rates, bw):
    "The rates a phase measured just before it ran (the baseline's when it has none)."
    return t.get("rates") or rates, t.get("bandwidth") or bw

def report_train(R, rates, bw, a, rows):
    t = R["train"]
    if "failed" in t: return
    rates, bw = own_rates(t, rates, bw)
    L, ctx, ntok = len(t["layers"]), t["ctx"], t["batch"] * t["ctx"]
    s = 4 if not a.device.startswith("cuda") else 2
    OPT_BYTES = 64       # per parameter and step: schedule-free signum's lerps, swaps, sign and add (~16 fp32 passes)
    opt_fp = OPT_BYTES * P_CODER / bw                                 # one coder's optimizer step, seconds
    coder = (train_bill(ctx, 1) - train_bill(ctx, 0)).seconds(rates)  # one coder's per-token work
    fwd = train_bill(ctx, 0).seconds(rates)
    fp = fwd + L * (coder + opt_fp / ntok)
    r, txt = ratio_text(t["per_token"], fp)
    r_f, txt_f = ratio_text(t["forward_per_token"], fwd)
    r_c, txt_c = ratio_text(t["coder_per_token"], coder)
    r_o, txt_o = ratio_text(t["optimizer_step"], opt_fp)
    readme_c = 3 * 2 * D * F / (ENC.flops / ENC.seconds(rates))
    say(f"  step per token ({L} coders, {ntok} tokens per step): measured {1e3 * t['per_token']:.1f} ms, first "
        f"principles {1e3 * fp:.1f} ms: {txt}")
    say(f"  model forward: {1e3 * t['forward_per_token']:.1f} ms/token vs {1e3 * fwd:.1f}: {txt_f}")
    say(f"  optimizer step per coder: {t['optimizer_step']:.2f} s vs {OPT_BYTES} B x 153M / bandwidth = "
        f"{opt_fp:.2f} s: {txt_o} (per step, whatever its tokens: {1e3 * t['optimizer_step'] / ntok:.2f} ms/token "
        f"here, 16x less at r1's 8 x 1,024 tokens per step)")
    say(f"  per coder per token (step - forward - optimizer, / {L}): {1e3 * t['coder_per_token']:.2f} ms vs ours "
        f"{1e3 * coder:.2f} (encoder forward 2 x d x F, sparse backward, skip): {txt_c}; README's 3 x 2 x d x F at the "
        f"encoder's rate {1e3 * readme_c:.2f} ms: {ratio_text(t['coder_per_token'], readme_c)[1]}")
    per_coder = t["above"] / L
    # weights + grads + schedule-free z; one layer's transients: pre-activations, and the encoder backward's
    # (tokens, k, d) contributions (plus their fp32 copy when the model is not fp32)
    fpm = 12 * P_CODER + (ntok * F * s + ntok * K * D * (s + (4 if s != 4 else 0))) / L
    say(f"  memory per coder: measured {per_coder / GB:.2f} GB, first principles {fpm / GB:.2f} GB (12 B x 153M + "
        f"one layer's transients), {ratio_text(per_coder, fpm)[1]}; model {t['model_bytes'] / GB:.2f} GB "
        f"(first principles {P_MODEL * s / GB:.2f})")
    n1 = R1["train_batch"] * R1["ctx"]
    fwd1 = train_bill(R1["ctx"], 0)
    coder1 = train_bill(R1["ctx"], 1) - fwd1
    full = train_bill(R1["ctx"], NL).flops * R1["train_tokens"]
    here = (fwd1.seconds(rates) * r_f + NL * (coder1.seconds(rates) * r_c + opt_fp * r_o / n1)) * R1["train_tokens"]
    # the optimizer at the GPU's bandwidth as it is (its elementwise kernels run near bandwidth there; the CPU's ratio
    # comes from its slow sign() and XOR swaps)
    a100 = (fwd1.flops * r_f + NL * coder1.flops * r_c) * R1["train_tokens"] / A100 + (
        NL * OPT_BYTES * P_CODER / 1.5e12 * R1["train_tokens"] / n1)
    mem = P_MODEL * 2 + NL * (12 * P_CODER) + n1 * (F * 2 + K * D * 6)
    readme_full = README["train"]["flops_per_token"](NL) * R1["train_tokens"]
    say(f"  r1 budget, 28 layers x 200M tokens: {full:.2e} FLOPs (README {readme_full:.2e}: its encoder backward is "
        f"dense); this device {dur(here)}; A100 {dur(a100)} (the matmuls at 125 TFLOP/s x the measured ratios, the "
        f"optimizer's {OPT_BYTES} B/parameter at 1.5 TB/s; README: {README['train']['hours']} h); one GPU holding "
        f"all 28: "
        f"{mem / GB:.0f} GB (README: 52 GB of coders + 3.6 GB model + activations)")
    rows.append(("train", f"{1e3 * t['per_token']:.1f} ms/tok", f"{1e3 * fp:.1f}", r, f"{per_coder / GB:.2f} GB/coder",
                 per_coder / fpm, dur(here), dur(a100), "~7 h"))

def report_summary(R, rates, bw, a, rows):
    t = R["summary"]
    if "failed" in t: return
    rates, bw = own_rates(t, rates, bw)
    L, ctx, n = t["layers"], t["ctx"], t["tokens"]
    fp_full, fp_per = eval_bill(ctx, L, False, True), eval_bill(ctx, L, True, False)
    meas = (t["full_seconds"] + t["per_layer_seconds"]) / n
    fp = fp_full.seconds(rates) + fp_per.seconds(rates)
    rf, txt_f = ratio_text(t["full_seconds"] / n, fp_full.seconds(rates))
    rp, txt_p = ratio_text(t["per_layer_seconds"] / n, fp_per.seconds(rates))
    r, txt = ratio_text(meas, fp)
    eff = (fp_full + fp_per).flops / fp
    readme = README["summary"]["flops_per_token"](len(L)) / eff
    say(f"  summary's call: measured {1e3 * t['full_seconds'] / n:.1f} ms/token, first principles "
        f"{1e3 * fp_full.seconds(rates):.1f}: {txt_f}")
    say(f"  train's per-layer call: measured {1e3 * t['per_layer_seconds'] / n:.1f} ms/token, first principles "
        f"{1e3 * fp_per.seconds(rates):.1f}: {txt_p}")
    say(f"  both: {1e3 * meas:.1f} ms/token vs {1e3 * fp:.1f}: {txt}; README's count ((layers + 2) forwards of 2 x "
        f"1.78B) at the same rate {1e3 * readme:.1f} ms: {ratio_text(meas, readme)[1]}")
    fpm = (t["batch"] * ctx * V * 4) * 2 + t["batch"] * ctx * F * 4 * 2     # logits + probabilities; pre-acts
    above = max(t["full_above"], t["per_layer_above"])
    say(f"  memory above model and coders: measured {above / GB:.2f} GB, first principles {fpm / GB:.2f} GB (a "
        f"batch's fp32 logits twice, the coder's pre-activations twice): {ratio_text(above, fpm)[1]}")
    full_b = eval_bill(R1["ctx"], list(range(NL)), True, False) + eval_bill(R1["ctx"], list(range(NL)), False, True)
    here = full_b.seconds(rates) * r * R1["eval_tokens"]
    a100 = full_b.flops * R1["eval_tokens"] / A100 * r
    tok = R1["eval_batch"] * R1["ctx"]
    mem = P_MODEL * 2 + NL * P_CODER * 4 + tok * V * (2 + 4 + 2) + tok * F * 4 * 2
    say(f"  r1 budget, 1M eval tokens, 28 coders (per-layer call + summary call): {full_b.flops * 1e6:.2e} FLOPs "
        f"(README {README['summary']['flops_per_token'](NL) * 1e6:.2e}); this device {dur(here)}; A100 {dur(a100)} "
        f"(README ~15 min); GPU memory {mem / GB:.0f} GB with fp32 coders as load_transcoders gives them "
        f"(README ~12 GB + 5 GB logits)")
    rows.append(("summary", f"{1e3 * meas:.1f} ms/tok", f"{1e3 * fp:.1f}", r, f"+{above / GB:.2f} GB", above / fpm,
                 dur(here), dur(a100), "~15 min"))

def report_collect(R, rates, bw, a, rows):
    t = R["collect"]
    if "failed" in t: return
    rates, bw = own_rates(t, rates, bw)
    L, ctx = len(t["layers"]), t["ctx"]
    deepest = max(t["layers"])
    b_f = collect_bill(ctx, deepest, 0); b_e = ENC
    rf, txt_f = ratio_text(t["forward"], b_f.seconds(rates))
    _, txt_e = ratio_text(t["encode"], b_e.seconds(rates))
    say(f"  forward to layer {deepest}: {1e3 * t['forward']:.2f} ms/token vs first principles "
        f"{1e3 * b_f.seconds(rates):.2f}: {txt_f}")
    say(f"  encoder per layer: {1e3 * t['encode']:.2f} ms/token vs {1e3 * b_e.seconds(rates):.2f}: {txt_e}; "
        f"bookkeeping per layer {1e3 * t['book']:.2f} ms/token (not FLOPs: scatter, top-k merges, windows)")
    per28 = t["forward"] + NL * (t["encode"] + t["book"])
    fp28 = collect_bill(ctx, NL - 1, NL).seconds(rates)
    r, txt = ratio_text(per28, fp28)
    readme = README["collect"]["flops_per_token"](NL) / (collect_bill(ctx, NL - 1, NL).flops / fp28)
    say(f"  28 layers (forward + 28 x (encoder + bookkeeping)): {1e3 * per28:.1f} ms/token vs first principles "
        f"{1e3 * fp28:.1f}: {txt}; README's count at the same rate {1e3 * readme:.1f} ms")
    fpm = README["collect"]["state"](1)
    say(f"  kept-example state per layer: {t['state_bytes'] / GB:.3f} GB (its tensors, pool full) vs README's formula "
        f"{fpm / GB:.3f} GB: {ratio_text(t['state_bytes'], fpm)[1]}; x 28 = {NL * t['state_bytes'] / GB:.1f} GB "
        f"(README 5.4 GB); measured peak +{t['above'] / GB:.2f} GB for {L} layers over model and coders")
    here = per28 * R1["collect_tokens"]
    r_fe = (t["forward"] + NL * t["encode"]) / fp28                      # forward and encoders: the GPU's part
    gpu = collect_bill(R1["ctx"], NL - 1, NL).flops * R1["collect_tokens"] / A100 * r_fe
    book_cpu = NL * t["book"] * R1["collect_tokens"] if not a.device.startswith("cuda") else float("nan")
    say(f"  r1 budget, 10M tokens x 28 layers: this device {dur(here)}; A100 matmuls {dur(gpu)} (README ~10 min) + "
        f"the bookkeeping, which stays on the CPU in the library: {dur(book_cpu)} at this machine's rate "
        f"(README: about an hour)")
    rows.append(("collect", f"{1e3 * per28:.1f} ms/tok", f"{1e3 * fp28:.1f}", r,
                 f"{t['state_bytes'] / GB:.3f} GB/layer", t["state_bytes"] / fpm, dur(here), dur(gpu) + " + book",
                 "~10 min + ~1 h"))

def report_graphs(R, rates, bw, a, rows):
    runs = [v for k, v in R.items() if k.startswith("graphs:") and "failed" not in v]
    for k, v in R.items():
        if k.startswith("graphs:") and "failed" in v: say(f"  {k}: FAILED: {v['failed'][-300:]}")
    if not runs: return
    main = runs[0]
    base_rates, base_bw = rates, bw
    rates, bw = own_rates(main, rates, bw)
    L, B, N = main["layers"], main["batch"], main["nodes"]
    for v in runs:
        vr, vbw = own_rates(v, base_rates, base_bw)
        vs = 4 if v["variant"].startswith("fp32") else 2
        for r in v["rows"]:
            t = graph_seconds(r["n"], L, N, B, vs, vr, vbw); fp = sum(t.values())
            mem = graph_memory(r["n"], L, N, B, vs, lazy="lazy" in v["variant"])
            terms = (("patterns", "resid", "feature_vecs", "influence_copy", "hook_gather") if a.device != "cpu"
                     else ("patterns", "resid", "feature_vecs", "edge_matrix", "influence_copy", "hook_gather"))
            act = sum(mem[k] for k in terms)                # on cuda the edge matrix is on the host
            r["ratio"], txt = ratio_text(r["seconds"], fp)
            say(f"  {v['variant']}, {r['n']} tokens: {r['seconds']:.1f}s vs first principles {fp:.1f}s (matmuls "
                f"{t['matmuls']:.1f}, hook bytes {t['hooks']:.1f}, influence bytes {t['influence']:.2f}): {txt}; "
                f"memory +{r['above'] / GB:.2f} GB vs {act / GB:.2f} GB (patterns {mem['patterns'] / GB:.3f}, cached "
                f"inputs {mem['resid'] / GB:.3f}, feature rows {mem['feature_vecs'] / GB:.3f}, hook gather "
                f"{mem['hook_gather'] / GB:.3f}, edge matrix x2 {2 * mem['edge_matrix'] / GB:.3f}): "
                f"{ratio_text(r['above'], act)[1]}; load +{v['load_above'] / GB:.2f} GB vs weights "
                f"{mem['weights'] / GB:.2f} GB")
    if main.get("cache_check"):
        c = main["cache_check"]
        say(f"  forward cache check ({c['n']} tokens x {c['batch']} copies): autograd keeps {c['saved'] / GB:.3f} GB "
            f"for the backward, the attention-pattern term predicts {c['patterns'] / GB:.3f} GB: "
            f"{ratio_text(c['saved'], c['patterns'])[1]}")
    big = max(main["rows"], key=lambda x: x["n"])
    r = big["ratio"]                                  # the longest prompt: the least per-call overhead
    say(f"  scaling law (ratio {r:.2f}, measured at {big['n']} tokens): time = [matmul FLOPs / rates + hook bytes / "
        "bandwidth] x ratio + influence bytes / bandwidth. Per backward pass both grow as B x n x L (B copies of n "
        "positions through L layers; the hooks gather k = 64 gradient rows per position and layer), with "
        "ceil(N / B) + 1 passes; the attention term B x n^2 is small below ~2,000 tokens. Influence updates read "
        "the host's edge matrix, (rows so far) x (28 x 64 x n) fp32, once per 4 x B features, ~L + 4 passes each. "
        "Memory: B x 12 heads x n^2 x L attention patterns kept for the backward, B x n x d x (L + 1) cached inputs, "
        "2 x (28 x 64 x n) x d feature rows, one layer's gathered gradients B x 64 n x d (twice), the fp32 edge "
        "matrix (N + 10) x (28 x 64 x n) on the host and the influence update's copy of it on the device")
    Bf, Nf = R1["graph_batch"], R1["feature_nodes"]
    total_here = total_a100 = 0.0
    n_graphs = dict(zip(R1["prompt_lengths"], (24, 24)))      # 24 prompts; 2 segment graphs x 12 reasoning prompts
    for n in R1["prompt_lengths"]:
        t, t1 = graph_seconds(n, NL, Nf, Bf, 4, rates, bw), graph_seconds_a100(n, NL, Nf, Bf, 2)
        here = (t["matmuls"] + t["hooks"]) * r + t["influence"]
        a100 = (t1["matmuls"] + t1["hooks"]) * r + t1["influence"]
        total_here += n_graphs[n] * here; total_a100 += n_graphs[n] * a100
        m2, m4 = graph_memory(n, NL, Nf, Bf, 2), graph_memory(n, NL, Nf, Bf, 4)
        dev = lambda m: sum(m[k] for k in DEVICE_TERMS)
        say(f"  r1 graph, {n} tokens, 8,192 nodes, batch 256, 28 layers: {graph_bill(n, NL, Nf, Bf).flops:.2e} FLOPs, "
            f"{hook_bytes(n, NL, Nf, Bf, 2) / 1e12:.0f} TB of hook traffic (bf16); this device {dur(here)}; A100 "
            f"{dur(a100)} (matmuls {dur(t1['matmuls'])}, hooks {dur(t1['hooks'])}, influence {dur(t1['influence'])}, "
            f"the first two x {r:.2f}). GPU memory bf16 {dev(m2) / GB:.0f} GB (fp32 {dev(m4) / GB:.0f}): weights "
            f"{m2['weights'] / GB:.1f}, attention patterns {m2['patterns'] / GB:.1f}, cached inputs "
            f"{m2['resid'] / GB:.1f}, feature rows {m2['feature_vecs'] / GB:.1f}, hook gather "
            f"{m2['hook_gather'] / GB:.1f}, influence copy {m2['influence_copy'] / GB:.1f}; host: edge matrix "
            f"{m2['edge_matrix'] / GB:.1f} GB (README {README['graphs']['memory_edge'][n] / GB:.1f}) + final "
            f"adjacency {m2['adjacency'] / GB:.1f}")
        for Bs in (64, 32):
            m = graph_memory(n, NL, Nf, Bs, 2)
            t2 = graph_seconds_a100(n, NL, Nf, Bs, 2)
            say(f"    batch_size {Bs}: GPU memory bf16 {dev(m) / GB:.0f} GB, {graph_batches(n, NL, Nf, Bs)} backward "
                f"passes, A100 {dur((t2['matmuls'] + t2['hooks']) * r + t2['influence'])}")
        rows.append((f"graphs {n} tok", f"{big['seconds']:.1f} s/prompt@{big['n']}", "", r,
                     f"{dev(m2) / GB:.0f} GB GPU bf16", float("nan"), dur(here), dur(a100), "minutes"))
    say(f"  r1 graphs phase (24 prompts at 100 tokens + 24 segment graphs at up to 600): this device "
        f"{dur(total_here)}, A100 {dur(total_a100)} (README ~2-4 h)")

def main():
    import torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu"); ap.add_argument("--model", default=None)
    ap.add_argument("--phases", default=",".join(ALL_PHASES)); ap.add_argument("--out", default=None)
    ap.add_argument("--work", default=None, help="scratch folder kept between runs (default: a temporary one)")
    ap.add_argument("--layers", type=int, default=None, help="real-size coders trained / evaluated / collected")
    ap.add_argument("--ctx", type=int, default=None); ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--rate-seconds", type=float, default=1.0)
    ap.add_argument("--wall-clock", action="store_true", help="on cpu, time by the wall clock, not CPU seconds")
    ap.add_argument("--prepare-tokens", type=int, default=2_000_000)
    ap.add_argument("--train-steps", type=int, default=5); ap.add_argument("--train-batch", type=int, default=None)
    ap.add_argument("--eval-batch", type=int, default=None)
    ap.add_argument("--collect-ctx", type=int, default=1024); ap.add_argument("--collect-batch", type=int, default=None)
    ap.add_argument("--collect-batches", type=int, default=3)
    ap.add_argument("--label-features", type=int, default=200)
    ap.add_argument("--graph-layers", type=int, default=None); ap.add_argument("--graph-lengths", default=None)
    ap.add_argument("--graph-nodes", type=int, default=256); ap.add_argument("--graph-batch", type=int, default=None)
    ap.add_argument("--graph-variants", default=None,
                    help="dtype-backend[-lazy], comma-separated; the first is the one extrapolated; its last length "
                         "also runs the other variants")
    ap.add_argument("--n-random", type=int, default=1000)
    ap.add_argument("--cache-check", type=int, default=None, help="prompt length of the forward-cache check (0: off)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--graph-json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    gpu = a.device.startswith("cuda")
    if a.model is None:
        from r1_interp.models.registry import MODELS
        a.model = "r1-shape" if "r1-shape" in MODELS else "r1-shape-random"
    # cpu: sized to ~15 min on 2 cores; cuda: the r1 preset's own batch shapes, all 28 layers where they fit
    a.layers = a.layers or (4 if gpu else 2)
    a.ctx = a.ctx or (1024 if gpu else 256)
    a.rows = a.rows or (8192 if gpu else 512)
    a.train_batch = a.train_batch or (8 if gpu else 2)
    a.eval_batch = a.eval_batch or (8 if gpu else 1)
    a.collect_batch = a.collect_batch or (4 if gpu else 1)
    a.graph_layers = a.graph_layers or (NL if gpu else 4)
    a.graph_batch = a.graph_batch or (256 if gpu else 32)
    a.cache_check = (512 if gpu else 384) if a.cache_check is None else a.cache_check
    a.graph_lengths = ([int(x) for x in a.graph_lengths.split(",")] if isinstance(a.graph_lengths, str)
                       else a.graph_lengths or ([32, 100] if gpu else [16, 32, 64]))
    a.graph_variants = a.graph_variants or ("bf16-transformerlens,bf16-nnsight,bf16-transformerlens-lazy" if gpu else
                                            "fp32-transformerlens,bf16-transformerlens,fp32-nnsight,"
                                            "fp32-transformerlens-lazy")
    CLOCK.update(cpu=not gpu and not a.wall_clock, threads=torch.get_num_threads())
    if a.child:
        torch.manual_seed(0)
        return globals()[f"child_{a.child}"](a)
    own_work = a.work is None
    a.work = a.work or tempfile.mkdtemp(prefix="r1_shape_")
    Path(a.work).mkdir(parents=True, exist_ok=True)
    a.passthrough = [f"--{k.replace('_', '-')}" + ("" if isinstance(v, bool) else
                                                  f"={v if not isinstance(v, list) else ','.join(map(str, v))}")
                     for k, v in vars(a).items()
                     if k not in ("child", "phases", "out", "variant", "graph_json") and v not in (None, False)]
    phases = [p for p in a.phases.split(",") if p]
    bad = [p for p in phases if p not in ALL_PHASES]
    if bad: sys.exit(f"--phases: unknown {bad}; known: {', '.join(ALL_PHASES)}")
    say(f"r1-shape bench: model {a.model} on {a.device} ({os.cpu_count()} CPU cores, torch {torch.__version__}), "
        f"work folder {a.work}")
    say("times: " + ("this process's CPU seconds / torch's threads (an idle machine's wall time: other processes on "
                     "a shared machine do not count; --wall-clock for the wall clock)" if CLOCK["cpu"] else
                     "wall clock (synchronized on cuda)"))
    R = dict(settings={k: v for k, v in vars(a).items() if k != "passthrough"})
    def save():
        if a.out:
            from r1_interp.core.io import atomic_write_text
            atomic_write_text(a.out, json.dumps(R, indent=1, default=str))
    if "baseline" not in phases and a.out and Path(a.out).exists():       # a rerun of some phases: keep the baseline
        R["baseline"] = json.loads(Path(a.out).read_text()).get("baseline")
    for ph in ["baseline"] + [p for p in phases if p != "baseline"]:
        if ph == "baseline" and "baseline" not in phases and R.get("baseline"): continue
        if ph == "graphs":
            for i, var in enumerate(a.graph_variants.split(",")):
                extra = ["--variant", var] + (["--graph-json"] if i == 0 else [])
                if i: extra += [f"--graph-lengths={a.graph_lengths[-1]}"]
                R[f"graphs:{var}"] = run_child(a, "graphs", extra); save()
        else:
            R[ph] = run_child(a, ph); save()
    report(R, a)
    save()
    if own_work: shutil.rmtree(a.work, ignore_errors=True)

def report(R, a):
    b = R.get("baseline") or {}
    if "rates" not in b: return say("no baseline rates: nothing to compare against")
    rates, bw = b["rates"], b["bandwidth"]
    say(f"\n==== measured vs first principles ({b['dtype']} on {a.device}; rates measured above, "
        f"{b['rows']} rows per product)")
    rows = []
    if "prepare" in R and "failed" not in R["prepare"]:
        t = R["prepare"]; rate = t["tokens"] / t["seconds"]
        lo, hi = README["prepare"]["tokens_per_s"]
        say(f"\n-- prepare: {rate:,.0f} tokens/s on {t['cores']} cores (README's ~10-30 min for 200M tokens = "
            f"{lo:,.0f}-{hi:,.0f} tokens/s); 200M tokens here: {dur(200e6 / rate)}; peak {t['peak'] / GB:.2f} GB "
            f"resident (streaming: does not grow with the corpus); {t['disk_bytes_per_token']:.1f} B/token on disk "
            f"(README 4 B: 0.8 GB for 200M)")
        rows.append(("prepare", f"{1e6 / rate:.1f} us/tok", "", float("nan"), f"{t['peak'] / GB:.2f} GB", float("nan"),
                     dur(200e6 / rate), "(CPU)", "10-30 min"))
    for name, fn in (("train", lambda: report_train(R, rates, bw, a, rows)),
                     ("summary", lambda: report_summary(R, rates, bw, a, rows)),
                     ("collect", lambda: report_collect(R, rates, bw, a, rows))):
        if name in R and "failed" not in R[name]: say(f"\n-- {name}"); fn()
    if "label" in R and "per_feature" in R["label"]:
        t = R["label"]
        say(f"\n-- label: API-bound (Claude; README ~$250 for 28,000 features, not measured here). The offline "
            f"heuristic labeller: {1e3 * t['per_feature']:.2f} ms per feature = {dur(t['per_feature'] * R1['labels'])} "
            f"for 28,000 features")
        rows.append(("label", f"{1e3 * t['per_feature']:.1f} ms/feat (heuristic)", "", float("nan"), "", float("nan"),
                     dur(t["per_feature"] * R1["labels"]), "API-bound", "~$250"))
    if any(k.startswith("graphs:") for k in R): say("\n-- graphs"); report_graphs(R, rates, bw, a, rows)
    if "compare" in R and "rows" in R["compare"]:
        t = R["compare"]
        from r1_interp.models.prompts import BENCHMARK_PROMPTS
        n_graphs = 2 * len(BENCHMARK_PROMPTS) + 2 * sum(bool(p.requires_reasoning) for p in BENCHMARK_PROMPTS)
        worst = max(t["rows"], key=lambda r: r["seconds"])
        each = ", ".join(f"{r['graph']} ({r['nodes']} nodes, {r['edges']} edges) {r['seconds']:.1f}s"
                         for r in t["rows"])
        say(f"\n-- compare: {each} per graph on {t['cores']} cores, {t['n_random']} layered samples; the r1 "
            f"comparisons' ~{n_graphs} distinct graphs (R1 and base on 24 prompts, 2 segment graphs per reasoning "
            f"prompt) at the slowest: {dur(n_graphs * worst['seconds'])} here, "
            f"~{dur(n_graphs * worst['seconds'] * t['cores'] / 8)} on 8 cores (README: minutes on 8 cores)")
        rows.append(("compare", f"{worst['seconds']:.1f} s/graph", "", float("nan"), "", float("nan"),
                     dur(n_graphs * worst["seconds"]), "(CPU)", "minutes"))
    say("\n==== table: phase | measured | first principles | ratio | memory | memory ratio | r1 budget here | "
        "A100 (README's assumption x ratio) | README")
    for r in rows:
        ratio = "" if r[3] != r[3] else f"{r[3]:.2f}{' !' if not 0.5 <= r[3] <= 2 else ''}"
        mr = "" if r[5] != r[5] else f"{r[5]:.2f}{' !' if not 0.5 <= r[5] <= 2 else ''}"
        say(f"  {r[0]:<16} {r[1]:<26} {r[2]:>8} {ratio:>7} {r[4]:<22} {mr:>6} {r[6]:>10} {r[7]:>16} {r[8]}")
    say("  (! = ratio outside [0.5, 2])")

if __name__ == "__main__": main()
