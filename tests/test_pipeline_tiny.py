"""Every phase of the tiny preset end to end through the console script: prepare, sweep (4 grid points), select,
train, summary, collect, label (heuristic: no key), graphs (all 24 benchmark prompts, each health-checked), compare.
The run is conftest's `tiny_run`, killed in three phases and finished (test_reliability checks the kills; the rerun
that skips everything and Claude's labels with a sentinel key that must reach no file are checked there too), so
what is checked here is what a resumed run leaves."""
import json, shutil, subprocess
from pathlib import Path
import pandas as pd
import yaml
from r1_interp.core.layout import Layout
from conftest import r1_interp_cmd, CHROMIUM, chromium_dom

def check_index_in_browser(outputs):
    "Every link of index.html resolves to a file, it opens in headless Chromium with no console messages, and every image loads."
    import re
    from urllib.parse import unquote
    index = Layout(outputs).index
    hrefs = [h for h in re.findall(r'href="([^"#]+)"', index.read_text()) if not h.startswith("http://127.0.0.1:8032/")]  # the viewer
    assert hrefs and all((outputs/unquote(h)).exists() for h in hrefs), [h for h in hrefs if not (outputs/unquote(h)).exists()]
    if CHROMIUM is None: return
    dom, console = chromium_dom(index.as_uri(), outputs/".chromium")
    shutil.rmtree(outputs/".chromium", ignore_errors=True)
    assert "<h1>r1-interp: tiny</h1>" in dom and console == [], console
    imgs = re.findall(r'<img[^>]*src="([^"]+)"', dom)
    # figures: faithfulness, label scores and a thumbnail per graph (up to 24)
    assert sum(s.startswith("data:image/png") for s in imgs) >= 2 + min(24, len(pd.read_csv(Layout(outputs).graph_summary)))
    assert all(s.startswith("data:") or (outputs/unquote(s)).exists() for s in imgs)

def test_tiny_preset_end_to_end(tiny_run):
    tmp_path, r = tiny_run["outputs"], tiny_run["done"]
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lay = Layout(tmp_path)      # every path of the run, as the phases name them
    for phase in ("prepare", "sweep", "select", "train", "summary", "collect", "label", "graphs", "compare"): assert f"== {phase}:" in r.stdout
    sweep = sorted(p.name for p in (lay.sweep).glob("e*_k*.html"))
    assert sweep == ["e4_k16.html", "e4_k8.html", "e8_k16.html", "e8_k8.html"]
    win = yaml.safe_load((lay.winner).read_text())
    assert set(win) == {"expansion_factor", "k"}
    ev = json.loads((lay.checkpoints("train")/"layers_0-1"/"eval.json").read_text())
    assert [l["layer"] for l in ev["layers"]] == [0, 1] and all(l["expansion_factor"] == win["expansion_factor"] and l["k"] == win["k"] for l in ev["layers"])
    for l in ev["layers"]:
        assert l["fvu"] < l["fvu_skip_only"] and {"ce_increase_zero_ablation", "ce_increase_mean_ablation"} <= set(l)
        assert all(l[f"{k}_se"] > 0 for k in ("fvu", "ce_increase", "kl", "ce_increase_mean_ablation"))   # every number has its error
    corpus_meta = json.loads((lay.corpus("tiny-qwen2")/"meta.json").read_text())
    assert ev["excluded_token_ids"] == corpus_meta["excluded_token_ids"] and corpus_meta["separator_token_id"] in ev["excluded_token_ids"]
    full = json.loads((lay.full_replacement).read_text())
    assert 0 < full["top1_agreement"] <= 1 and full["ce_increase_se"] > 0
    ct = lay.circuit_tracer
    assert sorted(p.name for p in ct.iterdir()) == ["config.yaml", "layer_0.safetensors", "layer_1.safetensors"]
    html = (lay.report(lay.train, "summary").with_suffix(".html")).read_text()
    assert "CE increase" in html and "data:image/png;base64" in html
    graphs = sorted((lay.graph_json).rglob("*.json"))
    assert len([g for g in graphs if g.name != "graph-metadata.json"]) == 24
    check = subprocess.run(r1_interp_cmd() + ["graph", "check", str(lay.graph_json)], capture_output=True, text=True, timeout=300)
    verdicts = [l.split(" ", 1)[0] for l in check.stdout.splitlines() if l.startswith(("ok ", "WEAK ", "DEGENERATE ", "INVALID "))]
    assert check.returncode == 0 and len(verdicts) == 24 and set(verdicts) <= {"ok", "WEAK"}, check.stdout + check.stderr
    # the viewer: graphs listed by category, a feature file for every feature node of every graph (labelled or not)
    from r1_interp.graphs.viewer import serve, graph_index
    from r1_interp.features.feature_json import graph_features, feature_json_path
    gj = lay.graph_json; idx = graph_index(gj)["graphs"]
    assert len(idx) == 24 and all(g["title_prefix"] == f"[{g['slug'].split('/')[0]}]" for g in idx)
    missing = [(l, f) for l, fs in graph_features(gj).items() for f in fs
               if not feature_json_path(lay.feature_json, idx[0]["scan"], l, f).exists()]
    assert graph_features(gj) and missing == [], missing[:5]
    s = serve(gj, port=0, background=True)
    try: assert s.features == (lay.feature_json).resolve()
    finally: s.shutdown(); s.server_close()
    if CHROMIUM is not None:      # one of our own graphs in circuit-tracer's front end: it renders, a feature click shows examples
        import tempfile
        from test_viewer import Chromium, _centre
        g0 = idx[0]
        s = serve(gj, port=0, background=True, log=True); b = Chromium(tempfile.mkdtemp())
        try:
            b.call("Page.navigate", session=True, url=s.url + f"?slug={g0['slug']}")
            b.wait("document.querySelectorAll('.link-graph text.node').length")
            nid = b.js("(() => { const d = d3.selectAll('.link-graph text.node').data().filter(d => d.feature_type == 'cross layer transcoder'); return d.length ? d[0].nodeId : null })()")
            assert nid, "no transcoder feature node drawn"
            b.mouse(*_centre(b, nid))
            b.wait("document.querySelectorAll('.feature-detail .feature-example-list .ctx-container').length")
            reqs = b.requests()
            assert b.errors() == [] and reqs and all(u.startswith(s.url) or u.startswith("data:") for u in reqs), (b.errors(), reqs)
        finally: b.close(); s.shutdown(); s.server_close()
    # circuit-tracer's own loaders refuse the export (naming ours); every graph written passes Neuronpedia's schema
    cfg = yaml.safe_load((ct/"config.yaml").read_text())
    assert cfg["transcoders"] == ["layer_0.safetensors", "layer_1.safetensors"] and "load_circuit_tracer_set" in cfg["model_kind"]
    from r1_interp.graphs.check import neuronpedia_problems
    schema = json.loads((Path(__file__).parent/"data"/"neuronpedia"/"graph-schema.json").read_text())
    written = [g for g in lay.graphs.rglob("*.json") if g.parent.parent.name != "records" and g.name != "graph-metadata.json"
               and {"nodes", "links"} <= set(json.loads(g.read_text()))]
    problems = {g.name: neuronpedia_problems(json.loads(g.read_text()), g.stat().st_size, schema=schema) for g in written}
    assert len(written) >= 24 and not any(problems.values()), {k: v for k, v in problems.items() if v}
    summary = pd.read_csv(lay.graph_summary)
    assert len(summary) == 24 and summary.verdict.isin(["ok", "WEAK"]).all() and (summary.max_feature_nodes == 256).all()
    segments = pd.read_csv(lay.segment_summary)
    # the 12 reasoning prompts; the random model writes no result to target, which is recorded, never a fallback token
    assert len(segments) == 12 and segments.think_verdict.isin(["ok", "WEAK", "no target"]).all()
    if (segments.think_verdict != "no target").any(): assert segments.loc[segments.think_verdict != "no target", "think_target_is_top"].all()
    assert segments.loc[segments.think_verdict == "no target", "think_target_reason"].fillna("").str.len().gt(0).all()   # said, not silent
    assert len(pd.read_csv(lay.interventions)) > 0
    report = (lay.report(lay.graphs, "graphs").with_suffix(".html")).read_text()
    assert "replacement" in report and report.count("data:image/png;base64") >= 24
    # features: the store, heuristic labels and scores for both layers, their pages and the index
    from r1_interp.features.collect import FeatureStore
    from r1_interp.features.labels import LabelLog
    store = FeatureStore(lay.store)
    assert store.layers == [0, 1] and len(store.examples(1, kind="top")) > 0
    import duckdb      # the store as SQL sees it: every window decoded, every quantile set
    assert store.meta["format"] == 2 and duckdb.execute(f"SELECT count(*) FROM read_parquet('{tmp_path}/features/store/layer_*/examples.parquet') "
                                                        "WHERE text IS NULL OR quantile IS NULL").fetchone()[0] == 0
    for l in (0, 1):
        labels = LabelLog(lay.layer_labels(l)/"labels.jsonl").read()
        assert len(labels) == 12 and all(x["labeller"] == "heuristic" and x["model"] is None for x in labels)
        scores = LabelLog(lay.layer_labels(l)/"scores.jsonl").read()
        assert {x["method"] for x in scores} == {"detection", "fuzzing"} and all(x["rater"] == "token-match" for x in scores)
        assert (lay.pages/f"layer_{l}.html").exists()
    index = (lay.pages/"index.html").read_text()
    assert 'href="layer_0.html"' in index and 'href="layer_1.html"' in index
    assert "heuristic" in (lay.report(lay.features, "layer_1").with_suffix(".html")).read_text()
    # compare: the four comparisons in the index page, each with its statistics or a note
    comps = pd.read_csv(lay.compare/"comparisons.csv")
    assert set(comps.comparison) == {"think ~ answer", "correct vs incorrect", "tiny vs haiku"}
    assert "no usable graphs" in comps.set_index("comparison").notes["correct vs incorrect"]
    index = lay.index.read_text()
    for section in ("Transcoders", "Features", "Attribution graphs", "Motifs", "Reasoning model vs its base model", "Thinking vs answering",
                    "Against reference graphs", "Correct vs incorrect answers", "the tiny random model has no base model"):
        assert section in index, section
    check_index_in_browser(tmp_path)
