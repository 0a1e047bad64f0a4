"""Motif census, null models and comparisons on real graphs (Anthropic's published Haiku graph and the shared
degenerate graphs), property tests of the layered null on random layered DAGs, the downloader against a local HTTP
server, and the `r1-interp motifs` command."""
import functools, http.server, json, math, subprocess, threading
from collections import Counter
from pathlib import Path
import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from conftest import HAIKU, DEGENERATE, needs_shared_graphs, r1_interp_cmd
from r1_interp.graph_json import load_graph, parse_graph, fetch_graph, GraphFormatError, load_graph_dir
from r1_interp.census import triad_census, simple_edges, ffl_instances, signed_ffl_census, FFL_SIGNS
from r1_interp.nulls import motif_significance, null_graphs, null_censuses, layer_pair_degrees, dag_layers
from r1_interp.motif_compare import analyse_graph, analyse_folders, profile_frame, compare_groups, category_profiles, cosine_matrix

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
    assert c.n_b == 0 and math.isnan(c.cosine) and any("no usable graphs" in n for n in c.notes)
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
