"""Motif census, null models and comparisons on real graphs (Anthropic's published Haiku graph and the shared
degenerate graphs), property tests of the layered null on random layered DAGs, the calibration of group comparisons
on random layered DAGs (false positives and power), the downloader against a local HTTP server, and the
`r1-interp motifs` and `r1-interp motifs compare` commands."""
import functools, http.server, json, math, re, subprocess, sys, threading
from collections import Counter
from pathlib import Path
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from conftest import HAIKU, DEGENERATE, needs_shared_graphs, r1_interp_cmd
from r1_interp.core.graph_json import load_graph, parse_graph, fetch_graph, GraphFormatError, load_graph_dir
from r1_interp.motifs.census import triad_census, simple_edges, ffl_instances, signed_ffl_census, FFL_SIGNS
from r1_interp.motifs.nulls import motif_significance, null_graphs, null_censuses, layer_pair_degrees, dag_layers
from r1_interp.core.config import CompareConfig
from r1_interp.motifs.compare import (analyse_graph, analyse_folders, profile_frame, compare_groups, category_profiles,
                                      cosine_matrix, graph_motifs, category_statistics, run_compare, NoGraphs,
                                      STATISTICS, HEADLINE)

@needs_shared_graphs
def test_census_equals_networkx_on_haiku():
    for keep_errors in (False, True):
        g = load_graph(HAIKU, keep_errors=keep_errors)
        assert triad_census(g) == dict(nx.triadic_census(g.to_networkx()))

@needs_shared_graphs
def test_ffl_strongly_enriched_under_configuration_null():
    r = motif_significance(load_graph(HAIKU), "configuration", n_random=1000, seed=0)
    t = r.table()
    assert 22 < t.loc["030T", "z"] < 29        # published: about 24-26 at n=1000
    assert t.loc["030T", "sp"] > 0.4 and t.loc["030T", "p_upper"] == 1 / 1001
    assert t.z.abs().max() == t.loc["030T", "z"]   # the FFL is the most enriched class

@needs_shared_graphs
def test_nulls_are_reproducible():
    g = load_graph(HAIKU)
    a, _ = null_censuses(g, "configuration", 30, seed=3); b, _ = null_censuses(g, "configuration", 30, seed=3)
    assert (a == b).all()

@needs_shared_graphs
def test_signed_ffls_partition_the_ffls():
    g = load_graph(HAIKU)
    sc = signed_ffl_census(g)
    assert sum(sc[s] for s in FFL_SIGNS) == sc["coherent"] + sc["incoherent"] == triad_census(g)["030T"]
    top = ffl_instances(g, top=3)
    assert len(top) == 3 and (top.strength.diff().dropna() <= 0).all()

@needs_shared_graphs
def test_degenerate_graphs_are_reported_not_crashed_on():
    files = sorted(DEGENERATE.glob("*.json"))
    assert len(files) == 2
    for f in files:
        r = analyse_graph(f, "layered", n_random=50)
        assert r.health == "DEGENERATE" and r.excluded.startswith("degenerate graph: no transcoder feature nodes")
    table, results, errors = analyse_folders({"haiku": HAIKU.parent, "degenerate": DEGENERATE}, workers=2, null_model="configuration", n_random=50)
    assert errors == [] and len(results) == 3
    X, excluded = profile_frame(results)
    assert list(X.index.get_level_values("graph")) == ["capital-state-dallas"] and len(excluded) == 2
    c = compare_groups(results, "haiku", "degenerate")
    assert c.n_b == 0 and math.isnan(c.profile_cosine) and any("no usable graphs" in n for n in c.notes)
    assert c.verdict == "not enough graphs to test" and c.rows.p.isna().all()
    P = category_profiles(X)
    assert cosine_matrix(P).shape == (1, 1)

def _random_layered_dag(draw):
    n_layers = draw(st.integers(2, 6))
    layer = draw(st.lists(st.integers(0, n_layers - 1), min_size=4, max_size=40))
    n = len(layer)
    pairs = [(a, b) for a in range(n) for b in range(n) if layer[a] < layer[b]]
    if len(pairs) < 2: return None
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=2, max_size=min(200, len(pairs)), unique=True))
    nodes = [dict(node_id=str(i), feature_type="cross layer transcoder", layer=layer[i], ctx_idx=0) for i in range(n)]
    return parse_graph(dict(nodes=nodes, links=[dict(source=str(a), target=str(b), weight=1.0) for a, b in chosen]), "random-dag")

@st.composite
def layered_dags(draw):
    g = _random_layered_dag(draw)
    if g is None: return draw(st.nothing())
    return g

@given(g=layered_dags(), seed=st.integers(0, 2**31))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_layered_null_keeps_acyclicity_and_layer_pair_degrees(g, seed):
    s0, t0 = simple_edges(g)
    want = layer_pair_degrees(g.n_nodes, s0, t0, g.layer)
    real = triad_census(g)
    for s, d in null_graphs(g, "layered", n_random=3, swaps_per_edge=20, seed=seed):
        assert layer_pair_degrees(g.n_nodes, s, d, g.layer) == want
        assert (g.layer[s] < g.layer[d]).all()
        assert len(set(zip(s.tolist(), d.tolist()))) == len(s)
        G = nx.DiGraph(); G.add_nodes_from(range(g.n_nodes)); G.add_edges_from(zip(s.tolist(), d.tolist()))
        assert nx.is_directed_acyclic_graph(G)
        # the tie the reports mention: 021D + 030T is fixed by the out-degrees in any DAG without mutual edges
        c = dict(nx.triadic_census(G))
        assert c["021D"] + c["030T"] == real["021D"] + real["030T"]

@given(g=layered_dags(), seed=st.integers(0, 2**31))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_configuration_null_keeps_in_and_out_degrees(g, seed):
    s0, t0 = simple_edges(g)
    for s, d in null_graphs(g, "configuration", n_random=3, swaps_per_edge=20, seed=seed):
        assert Counter(s.tolist()) == Counter(s0.tolist()) and Counter(d.tolist()) == Counter(t0.tolist())
        assert (s != d).all() and len(set(zip(s.tolist(), d.tolist()))) == len(s)

def test_dag_layers_fall_back_to_topological_depth():
    nodes = [dict(node_id=str(i), feature_type="cross layer transcoder", layer=1, ctx_idx=0) for i in range(3)]
    g = parse_graph(dict(nodes=nodes, links=[dict(source="0", target="1", weight=1), dict(source="1", target="2", weight=1)]))
    assert dag_layers(g).tolist() == [0, 1, 2]

def test_malformed_files_name_file_and_record(tmp_path):
    good = dict(nodes=[dict(node_id="a", feature_type="embedding", layer="E", ctx_idx=0), dict(node_id="b", feature_type="logit", layer="2", ctx_idx=0)],
                links=[dict(source="a", target="b", weight=0.5)])
    (tmp_path/"good.json").write_text(json.dumps(good))
    bad = json.loads(json.dumps(good)); bad["links"].append(dict(source="a", target="ghost", weight=1.0))
    (tmp_path/"dangling.json").write_text(json.dumps(bad))
    dup = json.loads(json.dumps(good)); dup["nodes"].append(dict(node_id="b", feature_type="logit", layer="2", ctx_idx=1))
    (tmp_path/"dup.json").write_text(json.dumps(dup))
    (tmp_path/"broken.json").write_text("{not json")
    graphs, errors = load_graph_dir(tmp_path)
    assert [g.name for g in graphs] == ["good"]
    msgs = dict(errors)
    assert "link 1: target 'ghost' is not a node id" in msgs[str(tmp_path/"dangling.json")]
    assert "node 2 ('b'): duplicate node_id 'b'" in msgs[str(tmp_path/"dup.json")]
    assert "not valid JSON" in msgs[str(tmp_path/"broken.json")]
    r = subprocess.run(r1_interp_cmd() + ["motifs", str(tmp_path), "--n-random", "10", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, "bad files make the exit status non-zero"
    assert [json.loads(l)["graph"] for l in r.stdout.splitlines()] == ["good"], "the good file is still analysed"
    assert r.stderr.count("error: ") == 3 and "dangling.json" in r.stderr

@needs_shared_graphs
def test_cli_motifs_json():
    r = subprocess.run(r1_interp_cmd() + ["motifs", str(HAIKU), "--null", "configuration", "--n-random", "200", "--seed", "1", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert {"graph", "labels", "counts", "z", "sp"} <= set(rec)
    assert rec["labels"] == list(nx.triadic_census(nx.DiGraph()).keys())
    z = dict(zip(rec["labels"], rec["z"]))
    assert z["003"] is None and z["030T"] > 15
    assert rec["counts"][rec["labels"].index("030T")] == triad_census(load_graph(HAIKU))["030T"]

@needs_shared_graphs
def test_cli_motifs_size4_has_class_labels():
    r = subprocess.run(r1_interp_cmd() + ["motifs", str(HAIKU), "--null", "configuration", "--n-random", "5", "--size", "4", "--json"],
                       capture_output=True, text=True, timeout=300)
    rec = json.loads(r.stdout)
    assert len(rec["labels"]) == 199 and all(l.startswith("M4.") for l in rec["labels"])
    assert any(":bi-fan" in l for l in rec["labels"])

@pytest.fixture
def http_server(tmp_path):
    "A local HTTP server serving the shared graphs (read in place, never copied into the project) plus a broken file."
    (tmp_path/"broken.json").write_text("<html>not a graph</html>")
    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path):
            name = path.rsplit("/", 1)[-1]
            return str(HAIKU) if name == HAIKU.name else str(tmp_path/name)
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f"http://127.0.0.1:{srv.server_port}/graph_data"
    srv.shutdown()

@needs_shared_graphs
def test_fetch_graph_from_local_server(http_server, tmp_path):
    dest = tmp_path/"reference"
    p = fetch_graph("capital-state-dallas", dest, base_url=http_server)
    assert p == dest/"capital-state-dallas.json" and load_graph(p).n_edges == 1719
    p2 = fetch_graph(f"{http_server}/capital-state-dallas.json", tmp_path/"again")
    assert p2.read_bytes() == HAIKU.read_bytes()
    with pytest.raises(OSError, match="HTTP 404"): fetch_graph("missing", dest, base_url=http_server)
    with pytest.raises(GraphFormatError, match="not valid JSON"): fetch_graph("broken", dest, base_url=http_server)
    assert sorted(x.name for x in dest.iterdir()) == ["capital-state-dallas.json"], "nothing half-written is left behind"
    r = subprocess.run(r1_interp_cmd() + ["graph", "fetch", "capital-state-dallas", "missing", "--dest", str(tmp_path/"cli"), "--base-url", http_server],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "wrote" in r.stdout and "HTTP 404" in r.stderr


# --- comparisons -----------------------------------------------------------------------------------------------

def random_layered_dag(rng, close=0.0, name="g"):
    """A random layered DAG: 4-6 layers of 4-8 nodes, edges only forward with a density drawn per graph (0.15-0.35
    between adjacent layers, x0.6 per layer skipped), Gaussian signed weights. `close`: afterwards every open 2-step
    path A->B->C gets the edge A->C with this probability (planted feed-forward loops)."""
    n_layers = int(rng.integers(4, 7)); layer = np.repeat(np.arange(n_layers), rng.integers(4, 9, n_layers)); n = len(layer)
    gap = layer[None, :] - layer[:, None]
    A = rng.random((n, n)) < np.where(gap > 0, rng.uniform(0.15, 0.35) * 0.6 ** (gap - 1), 0.0)
    if close: A |= ((A.astype(int) @ A.astype(int)) > 0) & (rng.random((n, n)) < close)
    s, t = np.nonzero(A)
    nodes = [dict(node_id=str(i), feature_type="cross layer transcoder", layer=int(layer[i]), ctx_idx=0) for i in range(n)]
    links = [dict(source=str(a), target=str(b), weight=float(w)) for a, b, w in zip(s, t, rng.normal(0, 1, len(s)))]
    return dict(nodes=nodes, links=links)

def _group(rng, name, close=0.0, k=10, n_random=50):
    from dataclasses import replace
    return [replace(graph_motifs(parse_graph(random_layered_dag(rng, close), f"{name}{i}"), "layered", n_random, seed=i, profile_view=False), group=name)
            for i in range(k)]

def test_calibration_on_random_layered_dags():
    """40 seeds; per seed three groups of 10 random layered DAGs under the layered null (50 samples per graph): two
    from the same generator, one whose generator closes open 2-step paths with probability 0.35. Decision rule: the
    groups are called different when any statistic has a Benjamini-Hochberg q < 0.05. Same generator: called
    different in at most 4 of 40 seeds (a valid 5% test exceeds 4 with probability 0.048). Planted FFLs: called
    different in at least 36 of 40 (90%). Threads pinned to 1: these graphs are tiny, and numba's thread pool only
    adds contention on a shared 2-core machine."""
    import numba
    threads = numba.get_num_threads(); numba.set_num_threads(1)
    try:
        same = planted = headline = 0
        for seed in range(40):
            rng = np.random.default_rng(seed)
            res = _group(rng, "a") + _group(rng, "a2") + _group(rng, "b", close=0.35)
            c0 = compare_groups(res, "a", "a2", n_permutations=2000, n_bootstrap=500, seed=seed)
            c1 = compare_groups(res, "a", "b", n_permutations=2000, n_bootstrap=500, seed=seed)
            same += bool(c0.differing); planted += bool(c1.differing); headline += HEADLINE in c1.differing
            assert min(c0.n_a, c0.n_b, c1.n_b) >= 8 and list(c0.rows.statistic) == list(STATISTICS)   # the sparsest draws can lock every statistic
    finally: numba.set_num_threads(threads)
    print(f"same generator called different in {same}/40 seeds; planted FFLs detected in {planted}/40 ({HEADLINE}: {headline}/40)")
    assert same <= 4, f"same generator called different in {same} of 40 seeds"
    assert planted >= 36, f"planted FFL difference detected in only {planted} of 40 seeds"

def test_paired_design_uses_pairs():
    """10 pairs: both graphs of a pair share their base structure (drawn from the same seed); one side of every pair
    has extra closed loops. The paired comparison runs exact sign-flip tests (2**10 patterns) and detects the loops;
    5 pairs are 'not enough pairs' (2/32 > 0.05) rather than a p-value that cannot reach 0.05."""
    import numba
    threads = numba.get_num_threads(); numba.set_num_threads(1)
    from dataclasses import replace
    try:
        res = []
        for i in range(10):
            for grp, close in (("think", 0.0), ("answer", 0.3)):
                g = parse_graph(random_layered_dag(np.random.default_rng(100 + i), close), f"prompt-{i}")
                res.append(replace(graph_motifs(g, "layered", 40, seed=i, profile_view=False), group=grp))
    finally: numba.set_num_threads(threads)
    c = compare_groups(res, "think", "answer", paired=True, n_permutations=2000, n_bootstrap=500)
    assert (c.n_a, c.n_b) == (10, 10) and c.name == "think ~ answer"
    assert all(t.startswith("sign-flip permutation") and t.endswith("(exact, 1024 relabellings)") for t in c.rows.test)
    h = c.headline()
    assert h["effect"] < 0 and h["ci_high"] < 0 and h["q"] < 0.05 and {HEADLINE, "ffl_z"} <= set(c.differing), c.format()
    few = compare_groups([r for r in res if int(r.name.split("-")[1]) < 5], "think", "answer", paired=True)
    assert few.verdict == "not enough graphs to test" and few.rows.note.str.startswith("not enough pairs: 5 pairs allow 32").all()

@needs_shared_graphs
def test_copies_count_once(tmp_path):
    "A graph in two groups (symlinks to the shared file, which stays where it is) is analysed once and left out of an independent comparison."
    for sub, name in (("answer", "dallas"), ("incorrect", "dallas"), ("incorrect", "again")):
        (tmp_path/sub).mkdir(exist_ok=True); (tmp_path/sub/f"{name}.json").symlink_to(HAIKU)
    table, results, errors = analyse_folders({"answer": tmp_path/"answer", "incorrect": tmp_path/"incorrect"}, workers=1, null_model="layered", n_random=30)
    assert errors == [] and len(results) == 3 and len({r.digest for r in results}) == 1
    assert sorted(table.same_as) == ["", "answer/dallas", "answer/dallas"]
    assert category_statistics(results).n.unique().tolist() == [1]            # pooled: once
    X, excluded = profile_frame(results)
    assert len(X) == 1 and X.index[0][0] == "answer+incorrect"
    c = compare_groups(results, "answer", "incorrect")
    assert (c.n_a, c.n_b) == (0, 0) and any("byte-identical in 'answer' and 'incorrect'" in n for n in c.notes)

@needs_shared_graphs
def test_layered_profiles_are_one_bit_and_never_cosined():
    r = analyse_graph(HAIKU, "layered", n_random=100, profile_view=False)
    finite = [v for v in r.sp.values() if v is not None]
    assert r.dof == 1 and len(finite) == 4 and all(abs(abs(v) - 0.5) < 1e-12 for v in finite)
    X, excluded = profile_frame([r])
    assert len(X) == 0 and excluded.reason.tolist() == ["no configuration-null profile"]
    r2 = analyse_graph(HAIKU, "layered", n_random=100)                          # with the configuration null's view
    assert r2.profile_dof > 1 and len(profile_frame([r2])[0]) == 1

def _write_group(folder, rng, close, k):
    folder.mkdir(parents=True)
    for i in range(k): (folder/f"g{i}.json").write_text(json.dumps(random_layered_dag(rng, close)))

def test_cli_motifs_compare(tmp_path):
    rng = np.random.default_rng(0)
    _write_group(tmp_path/"plain", rng, 0.0, 6); _write_group(tmp_path/"closed", rng, 0.5, 6)
    r = subprocess.run(r1_interp_cmd() + ["motifs", "compare", str(tmp_path/"plain"), str(tmp_path/"closed"), "--n-random", "30", "--json",
                                          "--seed", "1", "--n-permutations", "1000", "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert (rec["a"], rec["b"], rec["n_a"], rec["n_b"], rec["paired"], rec["null"]) == ("plain", "closed", 6, 6, False, "layered")
    rows = {x["statistic"]: x for x in rec["rows"] if x["family"] == "statistics"}
    assert set(rows) == set(STATISTICS)
    assert {"mean_a", "mean_b", "effect", "ci_low", "ci_high", "p", "q", "test", "note"} <= set(rows[HEADLINE])
    assert rows[HEADLINE]["effect"] < 0 and rec["differing"] and rec["verdict"].startswith("differ on")
    text = subprocess.run(r1_interp_cmd() + ["motifs", "compare", str(tmp_path/"plain"), str(tmp_path/"closed"), "--n-random", "30", "--paired",
                                             "--null", "configuration", "--n-permutations", "500", "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("plain ~ closed: 6 and 6 pairs; configuration null") and "configuration profile:" in text.stdout
    assert "verdict:" in text.stdout and "sign-flip permutation" in text.stdout
    (tmp_path/"empty").mkdir()
    miss = subprocess.run(r1_interp_cmd() + ["motifs", "compare", str(tmp_path/"plain"), str(tmp_path/"nope")], capture_output=True, text=True, timeout=120)
    assert miss.returncode == 2 and miss.stderr.strip() == f"error: {tmp_path/'nope'}: no such folder"
    empty = subprocess.run(r1_interp_cmd() + ["motifs", "compare", str(tmp_path/"empty"), str(tmp_path/"plain")], capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and "no graph files" in empty.stderr

def test_motif_modules_do_not_import_torch():
    "The motif floor (census, nulls, comparisons, `r1-interp motifs compare`) runs where torch is not installed."
    code = ("import sys; import r1_interp.motifs.census, r1_interp.motifs.nulls, r1_interp.motifs.compare; from r1_interp.pipeline.cli import _motifs_compare; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

def test_run_compare_writes_what_its_parts_compute(tmp_path):
    """The compare phase (`run_compare`) writes exactly what its building blocks give for the same settings: the
    per-graph table, the category statistics (bootstrap resamples = permutations), the comparisons; a relative group
    folder is taken from `root`; notes and a cosine table of an earlier run do not survive a rerun that has none."""
    rng = np.random.default_rng(3)
    _write_group(tmp_path/"plain", rng, 0.0, 6); _write_group(tmp_path/"closed", rng, 0.5, 6)
    out = tmp_path/"out"; out.mkdir()
    for stale in ("note_segment.txt", "category_cosine.csv"): (out/stale).write_text("from an earlier run")
    cfg = CompareConfig(groups=("plain=plain", f"closed={tmp_path/'closed'}"), null_model="layered", n_random=20,
                        n_permutations=200, workers=1, notes=("model=no base model here",))
    run = run_compare(cfg, out, root=tmp_path)
    table, results, errors = analyse_folders({"plain": tmp_path/"plain", "closed": tmp_path/"closed"}, workers=1,
                                             null_model="layered", n_random=20, seed=0)
    assert errors == [] == run.errors and run.groups == {"plain": tmp_path/"plain", "closed": tmp_path/"closed"}
    assert (out/"graphs.csv").read_text() == table.to_csv(index=False)
    stats = category_statistics(results, n_bootstrap=200, seed=0)
    assert (out/"category_stats.csv").read_text() == stats.to_csv(index=False)
    c = compare_groups(results, "plain", "closed", n_permutations=200, n_bootstrap=200, seed=0)   # every pair: one
    assert (out/"comparisons.json").read_text() == json.dumps([c.to_dict()], indent=1)
    assert run.summary.comparison.tolist() == ["plain vs closed"] and (run.summary.n_a[0], run.summary.n_b[0]) == (6, 6)
    # one category ('uncategorised'): one mean profile, so no cosine; the earlier run's table and note are gone
    assert len(run.category_profiles) == 1 and run.cosine is None and not (out/"category_cosine.csv").exists()
    assert sorted(p.name for p in out.glob("note_*")) == ["note_model.txt"]
    assert (out/"note_model.txt").read_text() == "no base model here"
    empty = CompareConfig(groups=("none=nothing/here",), n_random=20, workers=1)
    with pytest.raises(NoGraphs, match=re.escape(f"none={tmp_path/'nothing'/'here'} (no such folder)")):
        run_compare(empty, tmp_path/"out2", root=tmp_path)
