"""`r1-interp serve`: circuit-tracer's front end from files shipped with the package, checked in headless Chromium
(Debian's `chromium`; .ci/run installs it) driven over the DevTools protocol: a graph renders, a logit and a feature
node are clicked, the feature panel shows examples written by `r1_interp.features.feature_json`, Save stores `qParams`,
nothing is logged as an error and no request leaves the machine. Then what the server hands out: only the front
end's files, graph and feature JSON inside their folders, only to a Host that names it."""
import base64, io, json, os, subprocess, time
import numpy as np
import pytest
from pathlib import Path
from conftest import needs_shared_graphs, HAIKU, needs_chromium, CHROMIUM

class Chromium:
    "Headless Chromium on the DevTools pipe (--remote-debugging-pipe): one page; its console, log and requests as events."
    def __init__(self, profile):
        r1, w1 = os.pipe(); r2, w2 = os.pipe()
        def fds():                                   # the child's fd 3 reads our commands, its fd 4 takes the replies
            a, b = os.dup(r1), os.dup(w2)            # (copies first: r1 or w2 may themselves be 3 or 4)
            os.dup2(a, 3); os.dup2(b, 4)
        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                      "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1400,1000",
                                      "about:blank"], preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(r1); os.close(w2)
        self.w, self.r, self.buf, self.n, self.events = w1, r2, b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for m in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"): self.call(m, session=True)
    def _read(self):
        while b"\0" not in self.buf:
            chunk = os.read(self.r, 1 << 20)
            if not chunk: raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)
    def call(self, method, session=False, **params):
        self.n += 1; msg = dict(id=self.n, method=method, params=params)
        if session: msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read()
            if m.get("id") == self.n:
                if "error" in m: raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)
    def js(self, expr):
        r = self.call("Runtime.evaluate", session=True, expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r: raise RuntimeError(f"{expr[:100]}: {r['exceptionDetails']}")
        return r["result"].get("value")
    def wait(self, expr, timeout=20.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if v := self.js(expr): return v
            time.sleep(0.05)
        raise AssertionError(f"never true within {timeout} s: {expr}\nerrors: {self.errors()}")
    def mouse(self, x, y, click=True):
        for t in ("mouseMoved", "mousePressed", "mouseReleased")[:3 if click else 1]:
            self.call("Input.dispatchMouseEvent", session=True, type=t, x=x, y=y, button="none" if t == "mouseMoved" else "left",
                      clickCount=1)
    def errors(self) -> list[str]:
        "Console errors, uncaught exceptions and the browser's error log (policy violations, failed loads) so far."
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif m == "Runtime.exceptionThrown": out.append("exception: " + json.dumps(p["exceptionDetails"])[:500])
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log ({p['entry']['source']}): {p['entry']['text']} {p['entry'].get('url', '')}")
        return out
    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]
    def close(self):
        try: self.call("Browser.close")
        except (RuntimeError, OSError): pass
        try: self.proc.wait(10)
        except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        os.close(self.w); os.close(self.r)

SCAN = "r1-interp-tiny-qwen2"
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """outputs/graphs/json/haiku/dallas.json (the shared Haiku graph, its scan ours, one feature node pointing at a
    feature of a real tiny store, with that feature's label as its clerp, one node with a hostile clerp) and
    outputs/features/json/<scan>/ written by write_feature_json from the tiny store."""
    from r1_interp.testing.fixtures import tiny_feature_store
    from r1_interp.features.feature_json import write_feature_json, feature_index
    from r1_interp.features.labels import label_record
    tmp = tmp_path_factory.mktemp("viewer")
    store = tiny_feature_store(tmp/"store", max_tokens=1500)
    stats = store.features(1); f = int(stats.sort_values("count").feature.iloc[-1])
    label = "fires inside words"
    out = write_feature_json(store, 1, tmp/"out"/"features"/"json", [label_record(1, f, "heuristic", None, label=label)],
                             scan=SCAN, features=[f])
    assert (out["written"], out["labelled"], out["with_examples"]) == (1, 1, 1)
    d = json.loads(HAIKU.read_text())
    d["metadata"].update(scan=SCAN, schema_version=1)
    feats = [n for n in d["nodes"] if n["feature_type"] == "cross layer transcoder"]
    node = max(feats, key=lambda n: n.get("influence") or 0) if any("influence" in n for n in feats) else feats[0]
    rec = json.loads((out["folder"]/f"{feature_index(1, f)}.json").read_text())
    node.update(feature=feature_index(1, f), clerp=label, activation=rec["quantile_values"][49])   # its median activation
    hostile = next(n for n in feats if n is not node); hostile["clerp"] = HOSTILE
    graphs = tmp/"out"/"graphs"/"json"; (graphs/"haiku").mkdir(parents=True)
    (graphs/"haiku"/"dallas.json").write_text(json.dumps(d))
    return dict(graphs=graphs, node=node, hostile=hostile, label=label, feature=rec, d=d)

def _centre(b, node_id):
    "Viewport centre of a node of the link graph (its `text.node` mark)."
    r = b.js(f"""(() => {{ const n = d3.selectAll('.link-graph text.node').filter(d => d.nodeId == {json.dumps(node_id)}).node();
                 if (!n) return null; const r = n.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2] }})()""")
    assert r is not None, f"node {node_id} is not drawn"
    return r

@needs_chromium
@needs_shared_graphs
def test_front_end_renders_clicks_shows_examples_and_saves(site, tmp_path):
    from r1_interp.graphs.viewer import serve
    s = serve(site["graphs"], port=0, background=True, log=True)
    b = Chromium(tmp_path/"profile")
    try:
        assert s.features == site["graphs"].parent.parent/"features"/"json"        # found next to the graphs
        b.call("Page.navigate", session=True, url=s.url + "?slug=haiku/dallas")
        n = b.wait("document.querySelectorAll('.link-graph text.node').length")
        assert n >= 50, n
        assert "[haiku]" in b.js("document.querySelector('select.graph-prompt-select option').textContent")
        assert b.js("document.querySelectorAll('.link-graph .y.axis .tick').length") > 10      # layer axis drawn
        # a logit: the panel names its token
        logit = next(x for x in site["d"]["nodes"] if x["feature_type"] == "logit")
        b.mouse(*_centre(b, logit["node_id"]))
        b.wait("document.querySelector('.feature-detail .feature-title')?.textContent.includes('Austin')")
        # a feature: its label, then its top examples from the feature JSON
        b.mouse(*_centre(b, site["node"]["node_id"]))
        b.wait(f"document.querySelector('.feature-detail .pp-clerp')?.textContent == {json.dumps(site['label'])}")
        b.wait("document.querySelectorAll('.feature-detail .feature-example-list .ctx-container').length")
        shown = b.js("Array.from(document.querySelectorAll('.feature-detail .example-quantile')).map(e => e.textContent.trim())")
        assert shown == [g["quantile_name"] for g in site["feature"]["examples_quantiles"]], shown
        first = b.js("document.querySelector('.feature-detail .feature-example-list .text-wrapper').textContent")
        assert first == "".join(site["feature"]["examples_quantiles"][0]["examples"][0]["tokens"])
        b.wait("document.querySelectorAll('.feature-detail .histogram-placeholder rect.bar').length == 50")
        assert "50pct" in b.js("document.querySelector('.feature-detail .feature-title span').textContent")
        # Save: qParams of this graph, written in place
        b.js("document.querySelector('button.save-button').click()")
        b.wait("document.querySelector('button.save-button').textContent == 'Saved!'")
        saved = json.loads((site["graphs"]/"haiku"/"dallas.json").read_text())
        assert saved["qParams"]["clickedId"] == site["node"]["node_id"] and saved["nodes"] == site["d"]["nodes"]
        from r1_interp.graphs.check import neuronpedia_problems       # a saved graph still uploads
        assert isinstance(saved["qParams"].get("pinnedIds", []), list) and neuronpedia_problems(saved) == []
        # npyjs (our shim) reads what NumPy writes
        buf = io.BytesIO(); np.save(buf, np.array([[1.5, -2.0], [3.0, 4.25]], np.float32))
        got = b.js(f"(() => {{ const a = npyjs.parse(Uint8Array.from(atob('{base64.b64encode(buf.getvalue()).decode()}'), "
                   f"c => c.charCodeAt(0)).buffer); return [a.shape, Array.from(a.data), a.dtype] }})()")
        assert got == [[2, 2], [1.5, -2.0, 3.0, 4.25], "<f4"]
        assert b.errors() == [], b.errors()
        # a label holding HTML reaches the tooltip's innerHTML (circuit-tracer's code); the policy stops it running
        b.mouse(*_centre(b, site["hostile"]["node_id"]), click=False)
        b.wait("document.querySelector('.tooltip img') !== null")
        time.sleep(0.3)
        assert b.js("document.title") != "pwned"
        assert any("Content Security Policy" in e for e in b.errors()), b.errors()
        # every request went to this server (or was a data: URL in the page's own CSS)
        reqs = b.requests()
        assert reqs and all(u.startswith(s.url) or u.startswith("data:") for u in reqs), [u for u in reqs if not u.startswith(s.url)]
        assert ("POST", "/save_graph/haiku/dallas", 200) in s.log and any(p.startswith("/features/") for _, p, _ in s.log)
    finally:
        b.close(); s.shutdown(); s.server_close()


# ---- what the server hands out: only the front end and graph/feature JSON inside their folders -----------------------
import http.client, socket
from urllib.parse import quote

def get(server, path, host=None, method="GET", body=None, headers=None):
    "(status, body) of a request to `server` with the Host header `host` (default: the one a browser sends for its url)."
    port = server.server_address[1]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    if host is not False: c.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
    for k, v in (headers or {}).items(): c.putheader(k, v)
    if body is not None and "Content-Length" not in (headers or {}): c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, data

GRAPH = '{"metadata": {"prompt": "p", "scan": "s"}, "nodes": [], "links": []}'

@pytest.fixture
def tree(tmp_path):
    "A served folder holding graphs (one in a subfolder, names with ? and #), other file types, links inside and out; features."
    from r1_interp.graphs.viewer import serve
    outside = tmp_path/"outside"; outside.mkdir()
    (outside/"secret.json").write_text('{"secret": 1}')
    (outside/"secret.txt").write_text("secret")
    folder = tmp_path/"graphs"; (folder/"sub").mkdir(parents=True)
    for name in ("a.json", "sub/b.json", "odd ?#name.json", "100%.json"): (folder/name).write_text(GRAPH)
    (folder/"notes.txt").write_text("not a graph")
    (folder/"page.html").write_text("<script>alert(1)</script>")
    (folder/".hidden.json").write_text(GRAPH)
    (folder/"leak.json").symlink_to("/etc/passwd")
    (folder/"leak2.json").symlink_to(outside/"secret.json")
    (folder/"outdir").symlink_to(outside, target_is_directory=True)
    (folder/"inside.json").symlink_to(folder/"a.json")          # a link that stays inside the folder is fine
    (folder/"txt.json").symlink_to(folder/"notes.txt")          # ... but not one that lands on a non-JSON file
    os.mkfifo(folder/"fifo.json")
    feats = tmp_path/"features"; (feats/"scan-a").mkdir(parents=True); (feats/"scan-a"/"5.json").write_text('{"f": 5}')
    s = serve(folder, port=0, background=True, features=feats)
    yield s
    s.shutdown(); s.server_close()

def test_serves_the_front_end_graphs_features_and_the_listing(tree):
    for path in ("/", "/index.html", "/lib/d3.min.js", "/lib/r1-shim.js", "/attribution_graph/init-cg.js", "/LICENSE",
                 "/data/graph-metadata.json", "/graph_data/a.json", "/graph_data/sub/b.json", "/graph_data/inside.json",
                 "/graph_data/a.json?x=1", "/features/scan-a/5.json"):
        assert get(tree, path)[0] == 200, path
    assert get(tree, "/favicon.ico")[0] == 204
    status, body = get(tree, "/features/scan-a/6.json")                 # not written: said so, in the page's format
    assert status == 200 and json.loads(body)["missing"] is True and json.loads(body)["examples_quantiles"][0]["examples"] == []
    assert get(tree, "/features/scan-a/x.json")[0] == 404 and get(tree, "/features/.scan/6.json")[0] == 404
    graphs = json.loads(get(tree, "/data/graph-metadata.json")[1])["graphs"]
    assert [(g["slug"], g.get("title_prefix")) for g in graphs] == [("100%", None), ("a", None), ("inside", None),
                                                                     ("odd ?#name", None), ("sub/b", "[sub]")]

def test_pages_carry_a_policy_that_keeps_requests_here(tree):
    c = http.client.HTTPConnection("127.0.0.1", tree.server_address[1], timeout=30); c.request("GET", "/")
    r = c.getresponse(); r.read()
    policy = dict(p.strip().split(" ", 1) for p in r.getheader("Content-Security-Policy").split(";"))
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'" and policy["default-src"] == "'none'"
    from r1_interp.graphs.viewer import frontend_files
    files = frontend_files()
    for rel, f in files.items():            # the front end's own code names no remote host; every library has its licence
        if rel.endswith((".html", ".js", ".css")) and not rel.startswith("lib/"):
            text = f.read_text()
            assert not any(h in text for h in ("transformer-circuits.pub", "unpkg.com", "cloudfront", "huggingface.co")), rel
    for lib in ("d3", "d3-collection", "dagre", "pako"): assert f"lib/{lib}.LICENSE" in files and f"lib/{lib}.min.js" in files
    assert "LICENSE" in files and max(map(len, files["lib/r1-shim.js"].read_text().splitlines())) <= 120

def test_a_changed_front_end_file_is_refused(tmp_path):
    import shutil
    from r1_interp.graphs.viewer import frontend_files, frontend_dir
    shutil.copytree(frontend_dir(), tmp_path/"fe")
    assert len(frontend_files(tmp_path/"fe")) == len(frontend_files())
    with open(tmp_path/"fe"/"util.js", "a") as f: f.write("\nfetch('https://evil.example')\n")
    with pytest.raises(FileNotFoundError, match="util.js: missing or changed"): frontend_files(tmp_path/"fe")

def test_names_with_question_mark_hash_and_percent_open(tree):
    for name in ("odd ?#name.json", "100%.json"):
        status, body = get(tree, "/graph_data/" + quote(name))
        assert (status, json.loads(body)) == (200, json.loads(GRAPH)), name

def test_links_out_of_the_folder_are_not_followed(tree):
    for path in ("/graph_data/leak.json", "/graph_data/leak2.json", "/graph_data/outdir/secret.json", "/graph_data/outdir/secret.txt"):
        status, body = get(tree, path)
        assert status == 404 and b"secret" not in body and b"root:" not in body, (path, status, body[:200])

def test_no_traversal(tree):
    out = tree.folder.parent/"outside"
    for path in ("/graph_data/../outside/secret.json", "/graph_data/%2e%2e/outside/secret.json",
                 "/graph_data/sub/..%2f..%2foutside/secret.json", "//etc/passwd", "/graph_data//etc/passwd",
                 "/graph_data/" + quote(str(out/"secret.json")), "/graph_data/a.json%00.txt", "/features/../graphs/a.json",
                 "/features/%2e%2e/outside/secret.json", "/lib/../../graphs/a.json", "/../outside/secret.json"):
        status, body = get(tree, path)
        assert status in (400, 404) and b"secret" not in body and b"nodes" not in body, (path, status)

def test_no_directory_listings(tree):
    for path in ("/graph_data/sub", "/graph_data/sub/", "/graph_data/outdir/", "/graph_data/", "/lib/", "/lib", "/features/",
                 "/features/scan-a/", "/attribution_graph/"):
        status, body = get(tree, path)
        assert status == 404 and b"b.json" not in body and b"d3.min" not in body and b"Directory listing" not in body, (path, status)

def test_only_json_graphs_and_front_end_files_are_served(tree):
    for path in ("/graph_data/notes.txt", "/graph_data/page.html", "/graph_data/.hidden.json", "/graph_data/txt.json",
                 "/graph_data/fifo.json", "/notes.txt", "/page.html", "/a.json", "/MANIFEST.json.bak", "/graph_data/sub/../notes.txt"):
        status, body = get(tree, path)
        assert status == 404 and b"alert" not in body and b"not a graph" not in body, (path, status)
    assert get(tree, "/graph_data/a.json", method="POST")[0] == 404 and get(tree, "/graph_data/a.json", method="PUT")[0] == 501

def save(tree, slug, body, headers=None, host=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    return get(tree, "/save_graph/" + quote(slug), host=host, method="POST", body=body if isinstance(body, bytes) else json.dumps(body).encode(), headers=h)

def test_save_writes_qparams_of_a_category_graph_atomically(tree):
    before = json.loads((tree.folder/"sub"/"b.json").read_text())
    status, body = save(tree, "sub/b", dict(qParams=dict(pinnedIds="x,y", clickedId="x"), timestamp="t"),
                        headers={"Origin": f"http://127.0.0.1:{tree.server_address[1]}"})
    assert (status, json.loads(body)) == (200, dict(saved="sub/b"))
    after = json.loads((tree.folder/"sub"/"b.json").read_text())
    assert after == dict(before, qParams=dict(pinnedIds=["x", "y"], clickedId="x"))     # arrays, as Neuronpedia wants
    assert sorted(p.name for p in (tree.folder/"sub").iterdir()) == ["b.json"]           # no temporary file left
    assert save(tree, "inside", dict(qParams={}))[0] == 200                               # a link inside: its target
    assert json.loads((tree.folder/"a.json").read_text())["qParams"] == {}

def test_save_refuses_what_is_not_this_page_saving_one_of_these_graphs(tree):
    port = tree.server_address[1]
    secret = (tree.folder.parent/"outside"/"secret.json").read_text()
    a = (tree.folder/"a.json").read_text()
    cases = [(save(tree, "a", dict(qParams={}), headers={"Origin": "http://evil.example"}), 403),
             (save(tree, "a", dict(qParams={}), host=f"evil.example:{port}"), 403),
             (save(tree, "a", dict(qParams={}), headers={"Content-Type": "text/plain"}), 415),
             (save(tree, "a", b"{}", headers={"Content-Length": str((1 << 20) + 1)}), 413),
             (save(tree, "a", b"not json"), 400), (save(tree, "a", dict(qParams=[1])), 400), (save(tree, "a", [1]), 400),
             (save(tree, "../outside/secret", dict(qParams={})), 404), (save(tree, "leak2", dict(qParams={})), 404),
             (save(tree, "outdir/secret", dict(qParams={})), 404), (save(tree, "no-such", dict(qParams={})), 404),
             (save(tree, "notes", dict(qParams={})), 404), (save(tree, "a", dict(qParams=dict(supernodes="[oops"))), 400),
             (save(tree, "a", dict(qParams=dict(clickedId=3))), 400)]
    assert [s for (s, _), _ in cases] == [want for _, want in cases]
    assert (tree.folder.parent/"outside"/"secret.json").read_text() == secret and (tree.folder/"a.json").read_text() == a

def test_host_header_is_checked(tree):
    port = tree.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert get(tree, "/graph_data/a.json", host)[0] == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", f"127.0.0.1.evil.example:{port}",
                 f"localhost.:{port}", "127.0.0.1", f"0.0.0.0:{port}", f"127.0.0.1:{port}@evil.example", ""):
        status, body = get(tree, "/graph_data/a.json", host)
        assert status == 403 and b"nodes" not in body, (host, status)
        assert get(tree, "/", host)[0] == 403 and get(tree, "/data/graph-metadata.json", host)[0] == 403
        assert get(tree, "/features/scan-a/5.json", host)[0] == 403
    assert get(tree, "/graph_data/a.json", host=False)[0] == 400           # HTTP/1.1 without a Host header

@pytest.mark.parametrize("bound,ok,refused", [
    ("127.0.0.1", ["127.0.0.1", "localhost", "[::1]"], ["evil.example", "192.168.1.5", "[::2]"]),
    ("localhost", ["127.0.0.1", "localhost", "[::1]"], ["evil.example"]),
    ("::1", ["[::1]", "localhost", "127.0.0.1"], ["evil.example", "::1"]),
    ("0.0.0.0", ["127.0.0.1", "localhost", "192.168.1.5", "[fe80::1]", "[::1]"], ["evil.example", "rebind.192.168.1.5.nip.io"]),
    ("192.168.1.5", ["192.168.1.5"], ["localhost", "127.0.0.1", "evil.example", "192.168.1.6"]),
])
def test_allowed_hosts_follow_the_bound_address(bound, ok, refused):
    from r1_interp.graphs.viewer import host_allowed
    for h in ok: assert host_allowed(f"{h}:8032", bound, 8032), (bound, h)
    for h in refused: assert not host_allowed(f"{h}:8032", bound, 8032), (bound, h)
    assert not host_allowed(f"{ok[0]}:8033", bound, 8032) and not host_allowed(None, bound, 8032)
    assert host_allowed(ok[0], bound, 80) and not host_allowed(ok[0], bound, 8032)   # no port: 80

def test_serve_binds_ipv6_loopback(tmp_path):
    from r1_interp.graphs.viewer import serve
    if not socket.has_ipv6: pytest.skip("no IPv6 here")
    (tmp_path/"a.json").write_text(GRAPH)
    try: s = serve(tmp_path, port=0, host="::1", background=True)
    except OSError as e: pytest.skip(f"cannot bind ::1 here: {e}")
    try:
        assert s.url == f"http://[::1]:{s.server_address[1]}/"
        c = http.client.HTTPConnection("::1", s.server_address[1], timeout=30); c.request("GET", "/graph_data/a.json")
        assert c.getresponse().status == 200
    finally: s.shutdown(); s.server_close()
