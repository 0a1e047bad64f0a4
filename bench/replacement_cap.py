"""Replacement score against the feature-node cap: the curve the demo's `max_feature_nodes` is chosen from.

circuit-tracer's replacement score (the share of input-to-output influence that flows through features rather than
error nodes) depends on how many feature nodes the graph keeps (`max_feature_nodes`). For each prompt and cap this
prints one JSON line: tokens, active and selected features, seconds, replacement and completeness scores; then, per
prompt, each cap's score as a fraction of the uncapped one and its time as a fraction of the uncapped time (the
ratios against the baseline run in the same run).

    python bench/replacement_cap.py --transcoders outputs/demo/transcoders/circuit-tracer \\
        [--model smollm2-135m] [--prompts fact-capital-france,baseline-fox] [--caps 64,128,256,512,1024,all]

Measured for the demo (see params/demo/graphs.yaml): the score grows about linearly in log(cap), with no knee.
"""
import argparse, json

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--transcoders", required=True, help="a circuit-tracer transcoder set (the train summary's export)")
    ap.add_argument("--prompts", default="fact-capital-france,baseline-fox", help="benchmark prompt ids, comma-separated")
    ap.add_argument("--caps", default="64,128,256,512,1024,all")
    ap.add_argument("--batch-size", type=int, default=32, dest="batch_size")
    a = ap.parse_args()
    from r1_interp.graphs.replacement import load_replacement_model
    from r1_interp.graphs.attribution import attribute_prompt, graph_scores, prompt_ids
    from r1_interp.models.prompts import BENCHMARK_PROMPTS
    caps = [None if c == "all" else int(c) for c in a.caps.split(",")]
    rm = load_replacement_model(a.model, a.transcoders)
    for pid in a.prompts.split(","):
        p = next((p for p in BENCHMARK_PROMPTS if p.id == pid), None)
        if p is None: raise SystemExit(f"no benchmark prompt {pid!r}")
        ids, rows = prompt_ids(p.text, rm.tokenizer), []
        for cap in caps:
            g, secs = attribute_prompt(rm, ids, max_n_logits=5, batch_size=a.batch_size, max_feature_nodes=cap)
            rows.append(dict(prompt=pid, tokens=len(ids), cap=cap, active=len(g.active_features), selected=len(g.selected_features),
                             seconds=round(secs, 1), **graph_scores(g)))
            print(json.dumps(rows[-1]), flush=True)
        top = next((r for r in rows if r["cap"] is None), None)
        if top:
            for r in rows:
                print(f"{pid}: cap {r['cap'] or 'all'}: replacement {r['replacement_score']:.3f} = "
                      f"{r['replacement_score'] / top['replacement_score']:.2f} of uncapped, time {r['seconds'] / top['seconds']:.2f} of uncapped")

if __name__ == "__main__": main()
