"""The offline graph viewer in headless Chromium (Debian's `chromium`; .ci/run installs it): the page loads a graph,
its nodes appear, nothing is logged to the console, and text from a graph file is shown, never run."""
import json, shutil, subprocess
import pytest
from conftest import needs_shared_graphs, HAIKU, needs_chromium, chromium_dom

def render(url, tmp_path):
    "(DOM after the page settled, console lines) of `url` in a fresh headless Chromium profile."
    return chromium_dom(url, tmp_path/"profile", budget_ms=15000)

@pytest.fixture
def served(tmp_path):
    from r1_interp.viewer import serve
    folder = tmp_path/"graphs"; folder.mkdir()
    d = json.loads(HAIKU.read_text())
    d["nodes"][0]["clerp"] = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
    d["metadata"]["prompt"] = "<script>document.title='pwned'</script>"
    (folder/"hostile.json").write_text(json.dumps(d))
    d["links"].append(dict(source="no-such-node", target=d["nodes"][0]["node_id"], weight=1.0))
    (folder/"dangling.json").write_text(json.dumps(d))
    s = serve(folder, port=0, background=True)
    yield s
    s.shutdown(); s.server_close()

@needs_chromium
@needs_shared_graphs
def test_viewer_draws_a_graph_with_no_console_errors(served, tmp_path):
    dom, console = render(served.url + "?graph=hostile.json", tmp_path)
    assert 'data-state="ready"' in dom and 'data-graph="hostile.json"' in dom, dom[-2000:]
    n = json.loads(HAIKU.read_text())
    assert f'data-nodes="{len(n["nodes"])}"' in dom and dom.count("<circle") == len(n["nodes"])
    assert console == [], console
    assert '<div id="errors"></div>' in dom
    # the hostile label and prompt are text: escaped in the DOM, and the page title is untouched
    assert "&lt;script&gt;document.title" in dom and "<title>r1-interp graph viewer</title>" in dom and "pwned</title>" not in dom.split("</head>")[0]

@needs_chromium
@needs_shared_graphs
def test_viewer_reports_a_broken_graph(served, tmp_path):
    "The console check can fail: a link to a missing node is logged and shown."
    dom, console = render(served.url + "?graph=dangling.json", tmp_path)
    assert any("link to a missing node: no-such-node" in l for l in console), console
    assert "link to a missing node" in dom.split('<div id="errors">')[1][:200]


# ---- what the server hands out: only graph/feature JSON inside the folder, only to a Host that names it -------------
import http.client, os, socket
from urllib.parse import quote

def get(server, path, host=None, method="GET"):
    "(status, body) of a request to `server` with the Host header `host` (default: the one a browser sends for its url)."
    port = server.server_address[1]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    if host is not False: c.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
    c.endheaders()
    r = c.getresponse(); body = r.read(); c.close()
    return r.status, body

@pytest.fixture
def tree(tmp_path):
    "A served folder holding graphs (one in a subfolder, names with ? and #), other file types, and links inside and out."
    from r1_interp.viewer import serve
    outside = tmp_path/"outside"; outside.mkdir()
    (outside/"secret.json").write_text('{"secret": 1}')
    (outside/"secret.txt").write_text("secret")
    folder = tmp_path/"graphs"; (folder/"sub").mkdir(parents=True)
    graph = '{"nodes": [], "links": []}'
    for name in ("a.json", "sub/b.json", "odd ?#name.json", "100%.json"): (folder/name).write_text(graph)
    (folder/"notes.txt").write_text("not a graph")
    (folder/"page.html").write_text("<script>alert(1)</script>")
    (folder/".hidden.json").write_text(graph)
    (folder/"leak.json").symlink_to("/etc/passwd")
    (folder/"leak2.json").symlink_to(outside/"secret.json")
    (folder/"outdir").symlink_to(outside, target_is_directory=True)
    (folder/"inside.json").symlink_to(folder/"a.json")          # a link that stays inside the folder is fine
    (folder/"txt.json").symlink_to(folder/"notes.txt")          # ... but not one that lands on a non-JSON file
    os.mkfifo(folder/"fifo.json")
    s = serve(folder, port=0, background=True)
    yield s
    s.shutdown(); s.server_close()

def test_serves_graphs_the_page_and_the_listing(tree):
    for path in ("/", "/index.html", "/__graphs.json", "/a.json", "/sub/b.json", "/inside.json", "/a.json?x=1"):
        status, body = get(tree, path)
        assert status == 200, path
    assert json.loads(get(tree, "/__graphs.json")[1]) == ["100%.json", "a.json", "inside.json", "odd ?#name.json", "sub/b.json"]

def test_names_with_question_mark_hash_and_percent_open(tree):
    for name in ("odd ?#name.json", "100%.json"):
        status, body = get(tree, "/" + quote(name))
        assert (status, json.loads(body)) == (200, {"nodes": [], "links": []}), name

def test_links_out_of_the_folder_are_not_followed(tree):
    for path in ("/leak.json", "/leak2.json", "/outdir/secret.json", "/outdir/secret.txt"):
        status, body = get(tree, path)
        assert status == 404 and b"secret" not in body and b"root:" not in body, (path, status, body[:200])

def test_no_traversal(tree):
    for path in ("/../outside/secret.json", "/%2e%2e/outside/secret.json", "/sub/..%2f..%2foutside/secret.json",
                 "//etc/passwd", "/" + quote(str(tree.folder.parent/"outside"/"secret.json")), "/a.json%00.txt"):
        status, body = get(tree, path)
        assert status in (400, 404) and b"secret" not in body, (path, status)

def test_no_directory_listings(tree):
    for path in ("/sub", "/sub/", "/outdir/", "/sub/?C=M"):
        status, body = get(tree, path)
        assert status == 404 and b"b.json" not in body and b"Directory listing" not in body, (path, status)

def test_only_json_graphs_are_served(tree):
    for path in ("/notes.txt", "/page.html", "/.hidden.json", "/txt.json", "/fifo.json", "/favicon.ico", "/sub/../notes.txt"):
        status, body = get(tree, path)
        assert status == 404 and b"alert" not in body and b"not a graph" not in body, (path, status)
    assert get(tree, "/a.json", method="POST")[0] == 501 and get(tree, "/a.json", method="PUT")[0] == 501

def test_host_header_is_checked(tree):
    port = tree.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert get(tree, "/a.json", host)[0] == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", f"127.0.0.1.evil.example:{port}",
                 f"localhost.:{port}", "127.0.0.1", f"0.0.0.0:{port}", f"127.0.0.1:{port}@evil.example", ""):
        status, body = get(tree, "/a.json", host)
        assert status == 403 and b"nodes" not in body, (host, status)
        assert get(tree, "/", host)[0] == 403 and get(tree, "/__graphs.json", host)[0] == 403
    assert get(tree, "/a.json", host=False)[0] == 400           # HTTP/1.1 without a Host header

@pytest.mark.parametrize("bound,ok,refused", [
    ("127.0.0.1", ["127.0.0.1", "localhost", "[::1]"], ["evil.example", "192.168.1.5", "[::2]"]),
    ("localhost", ["127.0.0.1", "localhost", "[::1]"], ["evil.example"]),
    ("::1", ["[::1]", "localhost", "127.0.0.1"], ["evil.example", "::1"]),
    ("0.0.0.0", ["127.0.0.1", "localhost", "192.168.1.5", "[fe80::1]", "[::1]"], ["evil.example", "rebind.192.168.1.5.nip.io"]),
    ("192.168.1.5", ["192.168.1.5"], ["localhost", "127.0.0.1", "evil.example", "192.168.1.6"]),
])
def test_allowed_hosts_follow_the_bound_address(bound, ok, refused):
    from r1_interp.viewer import host_allowed
    for h in ok: assert host_allowed(f"{h}:8032", bound, 8032), (bound, h)
    for h in refused: assert not host_allowed(f"{h}:8032", bound, 8032), (bound, h)
    assert not host_allowed(f"{ok[0]}:8033", bound, 8032) and not host_allowed(None, bound, 8032)
    assert host_allowed(ok[0], bound, 80) and not host_allowed(ok[0], bound, 8032)   # no port: 80

def test_serve_binds_ipv6_loopback(tmp_path):
    from r1_interp.viewer import serve
    if not socket.has_ipv6: pytest.skip("no IPv6 here")
    (tmp_path/"a.json").write_text('{"nodes": [], "links": []}')
    try: s = serve(tmp_path, port=0, host="::1", background=True)
    except OSError as e: pytest.skip(f"cannot bind ::1 here: {e}")
    try:
        assert s.url == f"http://[::1]:{s.server_address[1]}/"
        c = http.client.HTTPConnection("::1", s.server_address[1], timeout=30); c.request("GET", "/a.json")
        assert c.getresponse().status == 200
    finally: s.shutdown(); s.server_close()

@needs_chromium
def test_viewer_opens_a_graph_whose_name_has_question_mark_and_hash(tree, tmp_path):
    dom, console = render(tree.url + "?graph=" + quote("odd ?#name.json", safe=""), tmp_path)
    assert 'data-state="ready"' in dom and 'data-graph="odd ?#name.json"' in dom, dom[-2000:]
    assert console == [], console
