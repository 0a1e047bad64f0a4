"""Attribution graphs: our end-to-end time per prompt against a direct `circuit_tracer.attribute` call, and peak memory
against prompt length.

1. Overhead: per prompt, `r1_interp` (token ids, `attribute_prompt`, scores, pruned Neuronpedia JSON with fixed ids,
   atomic write, health check) against `circuit_tracer.attribute` alone on the same replacement model and tokens.
   Runs alternate (direct, ours, direct, ours) so machine drift hits both; the ratio of medians is printed. Goal:
   overhead under 5%. The JSON export and the check are part of "ours" (they are what a user gets), so the goal is
   about their cost next to attribution.
2. Memory: peak resident memory (sampled every 5 ms) while a fresh process attributes one prompt of each of 3
   lengths, and how far above the loaded models it goes (the adjacency is dense, (features + layers x positions)^2,
   and circuit-tracer runs `batch_size` copies of the prompt, so it grows with length).

    python bench/attribution.py [--model smollm2-135m] [--transcoders DIR] [--repeats 5] [--lengths 16 64 160]

Defaults are the demo's graph settings on the embedded default model (batch 32, 256 feature nodes, 5 logits) and a
24-token prompt; `--model tiny-qwen2` runs in seconds.

Without --transcoders, random skip transcoders are exported for the model (attribution cost does not depend on
their quality). With the demo's trained ones: --model smollm2-135m --transcoders outputs/demo/transcoders/circuit-tracer
"""
import argparse, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path

def make_transcoders(model, out):
    from r1_interp.models.registry import model_dims
    from r1_interp.transcoders.io import export_circuit_tracer, random_transcoders
    dims = model_dims(model)
    return export_circuit_tracer(random_transcoders(dims.d_model, dims.n_layers, k=16, std=0.05), Path(out)/"ct", model, n_layers=dims.n_layers)

TEXT = ("Problem: a snail climbs 3 meters up a 10 meter well each day and slides back 2 meters each night. "
        "On which day does it reach the top? Solution: after each full day and night it is 1 meter higher, so ") * 20

def prompt_of(tok, n):
    from r1_interp.graphs.attribution import prompt_ids
    return prompt_ids(tok.decode(tok(TEXT, add_special_tokens=False).input_ids[:n - 1]), tok)[:n]

def memory_child(a):
    import threading, psutil
    from r1_interp.graphs.replacement import load_replacement_model
    from r1_interp.graphs.attribution import attribute_prompt
    rm = load_replacement_model(a.model, a.transcoders)
    ids = prompt_of(rm.tokenizer, a.child)
    proc = psutil.Process(); base = proc.memory_info().rss; peak = [base]; stop = threading.Event()
    def sample():   # resident memory every 5 ms: ru_maxrss would report the model load's peak, not attribution's
        while not stop.is_set(): peak[0] = max(peak[0], proc.memory_info().rss); stop.wait(0.005)
    t = threading.Thread(target=sample); t.start()
    g, secs = attribute_prompt(rm, ids, max_n_logits=a.max_n_logits, batch_size=a.batch_size, max_feature_nodes=a.max_feature_nodes)
    stop.set(); t.join()
    print(json.dumps(dict(tokens=len(ids), peak_mb=peak[0] / 2**20, before_mb=base / 2**20, seconds=secs, nodes=int(g.adjacency_matrix.shape[0]))))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m"); ap.add_argument("--transcoders", default=None)
    ap.add_argument("--repeats", type=int, default=5); ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--lengths", type=int, nargs=3, default=[16, 64, 160])
    ap.add_argument("--max-feature-nodes", type=int, default=256, dest="max_feature_nodes")
    ap.add_argument("--batch-size", type=int, default=32, dest="batch_size"); ap.add_argument("--max-n-logits", type=int, default=5, dest="max_n_logits")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.transcoders is None: a.transcoders = str(make_transcoders(a.model, tempfile.mkdtemp()))
    if a.child: return memory_child(a)
    from circuit_tracer import attribute
    from r1_interp.graphs.replacement import load_replacement_model
    from r1_interp.graphs.attribution import prompt_ids, attribute_prompt, graph_scores, graph_to_json, write_graph_json
    from r1_interp.graphs.check import check_graph
    rm = load_replacement_model(a.model, a.transcoders); tok = rm.tokenizer
    ids = prompt_of(tok, a.tokens); text = tok.decode(ids[1:]); work = Path(tempfile.mkdtemp())
    kw = dict(max_n_logits=a.max_n_logits, batch_size=a.batch_size, max_feature_nodes=a.max_feature_nodes)
    def direct():
        t0 = time.perf_counter(); attribute(ids, rm, **kw); return time.perf_counter() - t0
    def ours():
        t0 = time.perf_counter()
        g, _ = attribute_prompt(rm, prompt_ids(text, tok), **kw)
        info = graph_scores(g)
        write_graph_json(graph_to_json(g, "bench", tok, info=info), work/"bench.json")
        check_graph(work/"bench.json")
        return time.perf_counter() - t0
    direct(); ours()   # warm-up
    d, o = [], []
    for r in range(a.repeats):
        for f, acc in (((direct, d), (ours, o)) if r % 2 == 0 else ((ours, o), (direct, d))): acc.append(f())
    md, mo = statistics.median(d), statistics.median(o)
    print(f"{a.model}, {len(ids)}-token prompt, max_feature_nodes {a.max_feature_nodes}, batch {a.batch_size}, {a.repeats} runs each:")
    print(f"  circuit_tracer.attribute: {['%.2f' % x for x in d]} s (median {md:.3f})")
    print(f"  r1_interp end to end (attribute + scores + JSON + check): {['%.2f' % x for x in o]} s (median {mo:.3f})")
    print(f"  ratio ours/direct: {mo/md:.3f}, overhead {100*(mo/md - 1):.1f}% (goal under 5%: {'met' if mo/md <= 1.05 else 'NOT met'})")
    print(f"\npeak resident memory of one attribution in a fresh process, by prompt length:")
    for n in a.lengths:
        r = subprocess.run([sys.executable, __file__, "--model", a.model, "--transcoders", a.transcoders, "--child", str(n),
                            "--max-feature-nodes", str(a.max_feature_nodes), "--batch-size", str(a.batch_size), "--max-n-logits", str(a.max_n_logits)],
                           capture_output=True, text=True)
        line = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if not line: print(f"  {n} tokens: failed: {r.stderr[-500:]}"); continue
        m = json.loads(line[-1])
        print(f"  {m['tokens']:>5} tokens: peak {m['peak_mb']:.0f} MB resident, {m['peak_mb'] - m['before_mb']:.0f} MB above the loaded models "
              f"({m['before_mb']:.0f} MB), {m['nodes']} graph nodes, {m['seconds']:.1f} s")

if __name__ == "__main__": main()
