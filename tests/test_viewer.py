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
