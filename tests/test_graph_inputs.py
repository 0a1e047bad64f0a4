"""Malformed and huge graph files, and `graph fetch` (issue 14, items 4 and 9): every file gets a verdict or an error
naming it, never a traceback; limits are checked before memory is spent; fetch speaks http(s) only and stays under
its base URL."""
import dataclasses, http.server, json, math, os, posixpath, subprocess, sys, tempfile, threading, time, tracemalloc
from pathlib import Path
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck
from conftest import HAIKU, needs_shared_graphs, r1_interp_cmd
from r1_interp.core.graph_json import (load_graph, fetch_graph, map_graphs, GraphFormatError, GraphSizeError, MAX_DENSE_NODES)
from r1_interp.graphs.check import check_graph, check_graphs
from r1_interp.motifs.compare import motif_report, analyse_graph, analyse_folders, compare_folders, GraphMotifs

VERDICTS = {"ok", "WEAK", "DEGENERATE", "INVALID"}

def small_graph(weights=(0.5, -0.3, 0.2, 0.4)) -> dict:
    "A well-formed graph with an embedding, two features, an error node and a logit (one feed-forward loop)."
    nodes = [dict(node_id="E_1_0", feature_type="embedding", layer="E", ctx_idx=0, feature=0),
             dict(node_id="0_5_0", feature_type="cross layer transcoder", layer="0", ctx_idx=0, feature=5, clerp="five"),
             dict(node_id="1_7_1", feature_type="cross layer transcoder", layer="1", ctx_idx=1, feature=7),
             dict(node_id="0_-1_1", feature_type="mlp reconstruction error", layer="0", ctx_idx=1, feature=-1),
             dict(node_id="2_9_1", feature_type="logit", layer="2", ctx_idx=1, feature=9)]
    links = [dict(source="E_1_0", target="0_5_0", weight=weights[0]), dict(source="0_5_0", target="1_7_1", weight=weights[1]),
             dict(source="0_5_0", target="2_9_1", weight=weights[2]), dict(source="1_7_1", target="2_9_1", weight=weights[3]),
             dict(source="0_-1_1", target="2_9_1", weight=0.01)]
    return dict(metadata=dict(prompt="a b", info=dict(replacement_score=0.8)), nodes=nodes, links=links)

GOOD = json.dumps(small_graph())

def malformed_files(folder:Path) -> dict[str, str]:
    "The issue's malformed files (and a few more) in `folder`; returns {file name: what its reason must say}."
    folder.mkdir(parents=True, exist_ok=True)
    cases = {
        "inf_ctx_idx.json": (GOOD.replace('"ctx_idx": 1', '"ctx_idx": Infinity', 1), "'ctx_idx' should be an integer, got inf"),
        "inf_layer.json": (GOOD.replace('"layer": "1"', '"layer": Infinity'), "'layer' should be an integer"),
        "inf_feature.json": (GOOD.replace('"feature": 7', '"feature": Infinity'), "'feature' should be an integer, got inf"),
        "nan_layer.json": (GOOD.replace('"layer": "1"', '"layer": NaN'), "'layer' should be an integer"),
        "layer_1e30.json": (GOOD.replace('"layer": "1"', '"layer": 1e30'), "is outside -1..10,000"),
        "string_metadata.json": (json.dumps(dict(json.loads(GOOD), metadata="a prompt")), "'metadata' should be a JSON object"),
        "string_info.json": (json.dumps(dict(json.loads(GOOD), metadata=dict(info="x"))), "metadata: 'info' should be a JSON object"),
        "deep_nesting.json": ("[" * 100_000 + "]" * 100_000, "nested deeper than the decoder allows"),
        "deep_in_a_node.json": (GOOD.replace('"feature": 7', '"feature": ' + "[" * 100_000 + "]" * 100_000), "nested deeper"),
        "int_5000_digits.json": (GOOD.replace('"ctx_idx": 1', '"ctx_idx": 1' + "0" * 5000, 1), "not valid JSON (Exceeds the limit"),
        "nested_node_id.json": (GOOD.replace('"node_id": "1_7_1"', '"node_id": [["1_7_1"]]'), "'node_id' should be a string"),
        "not_json.json": ("{not json", "not valid JSON"),
        "empty.json": ("", "not valid JSON"),
        "a_list.json": ("[1, 2]", "expected a JSON object with 'nodes' and 'links'"),
    }
    for name, (text, _) in cases.items(): (folder/name).write_text(text)
    (folder/"a_folder.json").mkdir(exist_ok=True); (folder/"a_folder.json"/"inside.json").write_text(GOOD)   # a folder, walked into
    return {k: why for k, (_, why) in cases.items()}

def fifo_that_never_hangs(path:Path, seconds:float=120) -> Path:
    "A named pipe; should a regression open it for reading, a writer end is opened and closed every 2 s so the read ends (EOF)."
    os.mkfifo(path)
    def feed():
        for _ in range(int(seconds / 2)):
            time.sleep(2)
            try: os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError: pass   # nobody reading: nothing to unblock
    threading.Thread(target=feed, daemon=True).start()
    return path

def test_every_malformed_file_is_invalid_with_its_reason(tmp_path):
    expected = malformed_files(tmp_path/"bad")
    (tmp_path/"bad"/"good.json").write_text(GOOD)
    (tmp_path/"bad"/"inf_weight.json").write_text(GOOD.replace('"weight": 0.01', '"weight": 1e400'))   # JSON's 1e400 is inf
    checks = {Path(c.path).relative_to(tmp_path/"bad").as_posix(): c for c in check_graphs(tmp_path/"bad")}
    assert set(checks) == set(expected) | {"good.json", "inf_weight.json", "a_folder.json/inside.json"}
    for name, why in expected.items():
        c = checks[name]
        assert c.verdict == "INVALID" and why in c.reasons[0] and c.reasons[0].startswith(str(tmp_path/"bad"/name)), (name, c.reasons)
        assert c.line().startswith(f"INVALID {tmp_path/'bad'/name}: ")
    assert checks["good.json"].verdict == "ok" and checks["a_folder.json/inside.json"].verdict == "ok"
    assert checks["inf_weight.json"].verdict == "DEGENERATE" and checks["inf_weight.json"].reasons == ["1 link(s) with non-finite weight"]
    fifo = fifo_that_never_hangs(tmp_path/"fifo.json")   # never opened: not a regular file
    assert check_graph(fifo).reasons == [f"{fifo}: not a regular file"]
    for name, why in expected.items():   # the loader behind motifs and the compare phase says the same
        with pytest.raises(GraphFormatError) as e: load_graph(tmp_path/"bad"/name)
        assert why in str(e.value)

def test_size_limits_are_checked_before_reading(tmp_path):
    (tmp_path/"g.json").write_text(GOOD)
    c = check_graph(tmp_path/"g.json", max_bytes=100)
    assert c.verdict == "INVALID" and f"{len(GOOD):,} bytes; graph files are read up to 100 bytes" in c.reasons[0]
    with pytest.raises(GraphSizeError): load_graph(tmp_path/"g.json", max_bytes=100)
    assert load_graph(tmp_path/"g.json", max_bytes=len(GOOD)).n_nodes == 4

def test_one_long_label_does_not_widen_every_row(tmp_path):
    "numpy sizes a string array by its longest string: one 100,000-character label among 2,000 nodes was 800 MB."
    nodes = [dict(node_id=str(i), feature_type="clt", layer=0, ctx_idx=0, clerp="x" * (100_000 if i == 0 else 3)) for i in range(2000)]
    (tmp_path/"g.json").write_text(json.dumps(dict(nodes=nodes, links=[])))
    tracemalloc.start()
    try: g = load_graph(tmp_path/"g.json")
    finally: _, peak = tracemalloc.get_traced_memory(); tracemalloc.stop()
    assert len(g.label[0]) == 100_000 and g.label[1] == "xxx" and peak < 64 << 20, f"{peak / 2**20:.0f} MiB"

@needs_shared_graphs
def test_graph_check_cli_gives_every_file_a_verdict(tmp_path):
    "`r1-interp graph check` over the malformed files, a good one and the real Haiku graph (read in place): one line each, exit 1."
    expected = malformed_files(tmp_path/"bad")
    (tmp_path/"bad"/"good.json").write_text(GOOD)
    r = subprocess.run(r1_interp_cmd() + ["graph", "check", str(tmp_path/"bad"), str(HAIKU)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    verdicts = {l.split(" ", 2)[1].rstrip(":"): l.split(" ", 1)[0] for l in lines[:-1]}
    assert verdicts == {**{str(tmp_path/"bad"/k): "INVALID" for k in expected}, str(tmp_path/"bad"/"good.json"): "ok",
                        str(tmp_path/"bad"/"a_folder.json"/"inside.json"): "ok", str(HAIKU): "ok"}
    assert lines[-1] == f"3 of {len(expected) + 3} graphs ok"
    r = subprocess.run(r1_interp_cmd() + ["graph", "check", str(tmp_path/"bad"), "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and len([json.loads(l) for l in r.stdout.splitlines()]) == len(expected) + 2

@needs_shared_graphs
def test_motifs_cli_analyses_the_good_files_and_names_the_bad(tmp_path):
    expected = malformed_files(tmp_path/"bad")
    r = subprocess.run(r1_interp_cmd() + ["motifs", str(tmp_path/"bad"), str(HAIKU), "--n-random", "20", "--json", "--workers", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert sorted(json.loads(l)["graph"] for l in r.stdout.splitlines()) == ["capital-state-dallas", "inside"]
    errors = [l for l in r.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == len(expected)
    for name, why in expected.items(): assert any(str(tmp_path/"bad"/name) in e and why in e for e in errors), name

def test_compare_phase_gets_named_errors_not_exceptions(tmp_path):
    "The compare notebook's library calls: bad files come back as (file, message); the good graphs are still compared."
    expected = malformed_files(tmp_path/"a")
    (tmp_path/"b").mkdir()
    for i, w in enumerate((0.5, 0.7, 0.9)):
        (tmp_path/"a"/f"g{i}.json").write_text(json.dumps(small_graph((w, -0.3, 0.2, 0.4))))
        (tmp_path/"b"/f"g{i}.json").write_text(json.dumps(small_graph((w, 0.3, -0.2, 0.4))))
    fifo_that_never_hangs(tmp_path/"a"/"pipe.json"); expected["pipe.json"] = "not a regular file"   # hashing it would block
    table, results, errors = analyse_folders({"a": tmp_path/"a", "b": tmp_path/"b"}, workers=2, null_model="layered", n_random=10)
    assert {Path(f).name for f, _ in errors} == set(expected)
    for f, e in errors: assert e.startswith(f) and expected[Path(f).name] in e
    assert sorted(r.name for r in results) == ["g0", "g0", "g1", "g1", "g2", "g2", "inside"]
    comparison, _, errors2 = compare_folders(tmp_path/"a", tmp_path/"b", n_random=10, workers=1, n_permutations=100, n_bootstrap=100)
    assert {Path(f).name for f, _ in errors2} == set(expected) and comparison.verdict

def test_map_graphs_names_unexpected_failures_and_goes_on(tmp_path):
    "A bug in the analysed function fails that file, named with the exception type; the other files still run."
    (tmp_path/"a.json").write_text(GOOD); (tmp_path/"b.json").write_text(GOOD)
    results, errors = map_graphs(_fails_on_a, tmp_path)
    assert results == ["b"]
    assert errors == [(str(tmp_path/"a.json"), f"{tmp_path/'a.json'}: unexpected ZeroDivisionError (division by zero)")]

def _fails_on_a(path):
    if Path(path).stem == "a": return 1 / 0
    return Path(path).stem

# --- a huge graph ------------------------------------------------------------------------------------------------

def write_big_graph(path:Path, n_nodes:int, links_per_node:int=2, n_layers:int=26, n_pos:int=12):
    "A circuit-tracer-shaped graph of `n_nodes` feature nodes with forward links, written piece by piece."
    node_id = lambda i: f"{i % n_layers}_{i}_{(i // n_layers) % n_pos}"
    with open(path, "w") as f:
        f.write('{"metadata": {"slug": "big", "prompt_tokens": ["a"]}, "qParams": {}, "nodes": [')
        f.write(",".join(json.dumps(dict(node_id=node_id(i), feature=i, layer=str(i % n_layers), ctx_idx=(i // n_layers) % n_pos,
                                         feature_type="cross layer transcoder", token_prob=0.0, is_target_logit=False, run_idx=0,
                                         reverse_ctx_idx=0, jsNodeId=f"{i % n_layers}_{i}-0", clerp="")) for i in range(n_nodes)))
        f.write('], "links": [')
        f.write(",".join(json.dumps(dict(source=node_id(i), target=node_id(i + j), weight=0.5)) for i in range(n_nodes)
                         for j in range(1, links_per_node + 1) if i + j < n_nodes and (i + j) % n_layers > i % n_layers))
        f.write("]}")

PEAK_RSS = r'''
import json, resource, subprocess, sys
def cap(): resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))   # a safety net: a regression fails here, not the machine
r = subprocess.run(sys.argv[1:], capture_output=True, text=True, preexec_fn=cap)
print(json.dumps(dict(rc=r.returncode, stdout=r.stdout, stderr=r.stderr, peak_kb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))
'''

def peak_rss(cmd) -> dict:
    "Run `cmd` in a fresh process and return its exit status, output and peak resident memory (KiB)."
    r = subprocess.run([sys.executable, "-c", PEAK_RSS, *cmd], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)

def test_motifs_refuses_a_150k_node_graph_within_1gb(tmp_path):
    "The census used to allocate a dense 150k x 150k matrix (21 GB) before the 20,000-node guard."
    write_big_graph(tmp_path/"big.json", 150_000)
    r = peak_rss(r1_interp_cmd() + ["motifs", str(tmp_path/"big.json"), "--n-random", "10"])
    assert r["rc"] == 1 and "Traceback" not in r["stderr"], r["stderr"][-3000:]
    assert f"error: {tmp_path/'big.json'}: 150,000 nodes; motif analysis takes at most {MAX_DENSE_NODES:,}" in r["stderr"]
    assert r["peak_kb"] < 1 << 20, f"peak resident memory {r['peak_kb'] / 1024:.0f} MiB"

# --- fuzz -------------------------------------------------------------------------------------------------------

DELETE, DEEP, DIGITS = "@delete@", "@deep@", "@digits@"
SPECIAL = {f'"{DEEP}"': "[" * 100_000 + "]" * 100_000, f'"{DIGITS}"': "1" + "0" * 5000}
odd = st.sampled_from([math.inf, -math.inf, math.nan, 1e30, -1e30, 10**30, 2**63, 10**400, -2, -1, 0, 3.5, True, False, None, "",
                       "E", "x", "12", " 3 ", "1e3", [], [1], {}, {"a": 1}, DEEP, DIGITS])
value = st.one_of(odd, st.integers(-3, 40), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4))
NODE_KEYS = ["node_id", "feature_type", "layer", "ctx_idx", "feature", "clerp", "activation", "influence"]
mutation = st.one_of(
    st.tuples(st.just("node"), st.integers(0, 9), st.sampled_from(NODE_KEYS), st.one_of(value, st.just(DELETE))),
    st.tuples(st.just("link"), st.integers(0, 9), st.sampled_from(["source", "target", "weight"]), st.one_of(value, st.just(DELETE))),
    st.tuples(st.just("top"), st.just(0), st.sampled_from(["nodes", "links", "metadata"]), st.one_of(value, st.just(DELETE))),
    st.tuples(st.just("info"), st.just(0), st.sampled_from(["replacement_score", "completeness_score", "max_feature_nodes",
                                                           "active_features", "category"]), value),
    st.tuples(st.just("node_item"), st.integers(0, 9), st.just(""), value),
    st.tuples(st.just("link_item"), st.integers(0, 9), st.just(""), value),
    st.tuples(st.just("link_copy"), st.integers(0, 9), st.just(""), st.just(None)),   # duplicate links, self-loops below
    st.tuples(st.just("self_loop"), st.integers(0, 9), st.just(""), st.just(None)))

def mutate(d:dict, muts) -> dict:
    for kind, i, key, v in muts:
        nodes, links = d.get("nodes"), d.get("links")
        if kind == "top": d.pop(key, None) if v == DELETE else d.__setitem__(key, v)
        elif kind == "info" and isinstance(d.get("metadata"), dict): d["metadata"].setdefault("info", {})[key] = v
        elif kind in ("node", "node_item") and isinstance(nodes, list) and nodes:
            if kind == "node_item": nodes[i % len(nodes)] = v
            elif isinstance(n := nodes[i % len(nodes)], dict): n.pop(key, None) if v == DELETE else n.__setitem__(key, v)
        elif kind in ("link", "link_item", "link_copy", "self_loop") and isinstance(links, list) and links:
            l = links[i % len(links)]
            if kind == "link_item": links[i % len(links)] = v
            elif kind == "link_copy": links.append(json.loads(json.dumps(l)))
            elif kind == "self_loop" and isinstance(l, dict): links.append(dict(l, target=l.get("source")))
            elif kind == "link" and isinstance(l, dict): l.pop(key, None) if v == DELETE else l.__setitem__(key, v)
    return d

@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(muts=st.lists(mutation, max_size=4), cut=st.one_of(st.none(), st.floats(0, 1)))
def test_fuzz_malformed_graph_json(muts, cut):
    """Whatever the file holds: a verdict (INVALID naming the file) or a GraphFormatError naming it, never another
    exception, in bounded memory."""
    text = json.dumps(mutate(small_graph(), muts))
    for k, v in SPECIAL.items(): text = text.replace(k, v)
    if cut is not None: text = text[:int(len(text) * cut)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)/"fuzz.json"; path.write_text(text)
        tracemalloc.start()
        try:
            c = check_graph(path)
            assert c.verdict in VERDICTS
            c.line(); json.dumps(dict(dataclasses.asdict(c), ok=c.ok))      # what `graph check` prints, plain and --json
            if c.verdict == "INVALID": assert c.reasons and c.reasons[0].startswith(str(path))
            try: g = load_graph(path, keep_errors=True)
            except GraphFormatError as e:
                assert str(e).startswith(str(path)); return
            assert c.verdict != "INVALID", c.reasons
            rep = motif_report(path, n_random=4)                              # what `motifs` does with it
            json.dumps(rep)
            assert isinstance(analyse_graph(path, n_random=4, profile_view=False), GraphMotifs)   # the compare phase
        finally:
            _, peak = tracemalloc.get_traced_memory(); tracemalloc.stop()
        assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB traced for a {len(text)}-byte file"

# --- graph fetch ------------------------------------------------------------------------------------------------

@pytest.fixture
def graph_site():
    "A local HTTP server: a graph under /graph_data/, one outside it, redirects to file:// and ftp://, a 5 kB body; records requests."
    requests = []
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            path = posixpath.normpath(self.path)          # as a real web server resolves '..'
            redirect = {"/graph_data/to-file.json": "file:///etc/passwd", "/graph_data/to-ftp.json": "ftp://127.0.0.1:9/x.json"}.get(path)
            if redirect: self.send_response(302); self.send_header("Location", redirect); self.end_headers(); return
            body = {"/graph_data/good.json": GOOD, "/secret.json": GOOD, "/graph_data/big.json": GOOD + " " * 5000}.get(path)
            if body is None: self.send_response(404); self.end_headers(); return
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body.encode())
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f"http://127.0.0.1:{srv.server_port}/graph_data", requests
    srv.shutdown()

def test_fetch_speaks_only_http_and_stays_under_the_base(graph_site, tmp_path):
    base, requests = graph_site
    dest = tmp_path/"dest"
    local = tmp_path/"local.json"; local.write_text(GOOD)
    for url in (f"file://{local}", f"file:{local}", "ftp://127.0.0.1:9/x.json"):
        with pytest.raises(GraphFormatError, match="must be an http:// or https:// URL"): fetch_graph(url, dest, base_url=base)
    for slug in ("../secret", "a/../../secret", "/secret", "%2e%2e/secret", ".hidden"):
        with pytest.raises(GraphFormatError, match="stays under"): fetch_graph(slug, dest, base_url=base)
    with pytest.raises(GraphFormatError, match="the base URL must be an http"): fetch_graph("good", dest, base_url=f"file://{tmp_path}")
    assert requests == [] and not dest.exists(), "refused before any request"
    with pytest.raises(OSError, match="Redirection to url 'file:///etc/passwd' is not allowed"):   # urllib's own check
        fetch_graph("to-file", dest, base_url=base)
    with pytest.raises(OSError, match="redirect to a non-http"): fetch_graph("to-ftp", dest, base_url=base)   # urllib follows ftp
    with pytest.raises(GraphSizeError, match="more than 1,000 bytes"): fetch_graph("big", dest, base_url=base, max_bytes=1000)
    assert fetch_graph("good", dest, base_url=base) == dest/"good.json" and (dest/"good.json").read_text() == GOOD
    assert sorted(p.name for p in dest.iterdir()) == ["good.json"]
    r = subprocess.run(r1_interp_cmd() + ["graph", "fetch", f"file://{local}", "../secret", "good", "--dest", str(tmp_path/"cli"),
                                          "--base-url", base], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stdout.strip() == f"wrote {tmp_path/'cli'/'good.json'}"
    assert r.stderr.count("error: ") == 2 and "must be an http:// or https:// URL" in r.stderr and "stays under" in r.stderr
