"""The features phase where notebooks cannot show it well: a collection and a labelling run killed with SIGKILL in
the middle and rerun (nothing lost, nothing counted or labelled twice), and a feature page in headless Chromium with
hostile corpus text and labels (shown as text, never run)."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd
import pytest
from conftest import needs_chromium, chromium_dom

COLLECT = """
import sys
from pathlib import Path
from r1_interp.models.registry import load_model
from r1_interp.transcoders.io import random_transcoders
from r1_interp.models.corpus import tokenize_corpus, TokenCorpus
from r1_interp.features.collect import collect_features
model, tok = load_model("tiny-qwen2")
corpus = TokenCorpus(tokenize_corpus("demo", tok, Path(sys.argv[1])/"corpus", ctx_len=32, max_tokens=40000))
collect_features(model, random_transcoders(64, 2), corpus, sys.argv[2], batch_size=4, n_top=6, n_sample=6, n_pool=16, before=4, after=2,
                 save_every=5, tokenizer=tok, echo=lambda m: print(m, flush=True))
"""

def _run(script, *args, **kw):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

def _kill_after(proc, needle:str, n:int=1, timeout:float=300):
    "SIGKILL `proc` once `needle` has appeared in `n` of its stdout lines; returns the lines read."
    seen, lines, t0 = 0, [], time.time()
    for line in proc.stdout:
        lines.append(line)
        if needle in line:
            seen += 1
            if seen >= n: proc.send_signal(signal.SIGKILL); proc.wait(); return lines
        assert time.time() - t0 < timeout, "child too slow"
    proc.wait()
    raise AssertionError(f"the child finished before it could be killed: {lines[-5:]} {proc.stderr.read()[-2000:]}")

def test_collect_resumes_after_sigkill(tmp_path):
    from r1_interp.features.collect import FeatureStore, STATE_DIR, META_FILE
    ref = _run(COLLECT, tmp_path, tmp_path/"ref"); out, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err[-3000:]
    killed = _run(COLLECT, tmp_path, tmp_path/"killed")
    lines = _kill_after(killed, "batches,", n=2)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path/"killed"/STATE_DIR/"state.pt").exists() and not (tmp_path/"killed"/META_FILE).exists()
    again = _run(COLLECT, tmp_path, tmp_path/"killed"); out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "resuming from" in out and "10 batches done" in out, out
    a, b = FeatureStore(tmp_path/"ref"), FeatureStore(tmp_path/"killed")
    assert a.meta["tokens"] == b.meta["tokens"]
    for l in (0, 1):
        pd.testing.assert_frame_equal(a.features(l), b.features(l))
        pd.testing.assert_frame_equal(a.examples(l), b.examples(l))
    assert not list(tmp_path.glob("killed/*collect_state*")), "collection checkpoints removed at the end"

LABEL = """
import os, sys
from r1_interp.features.collect import FeatureStore
from r1_interp.features.labels import LabelLog, ClaudeLabeller, claude_client, label_features, features_to_label
store = FeatureStore(sys.argv[1])
feats = features_to_label(store, 1, min_frequency=1e-3, max_features=24)
lab = ClaudeLabeller(claude_client(base_url=sys.argv[3]))
label_features(store, 1, LabelLog(sys.argv[2]), lab, features=feats, max_concurrency=2, echo=lambda m: print(m, flush=True))
print("DONE", len(feats), flush=True)
"""

@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    from r1_interp.testing.fixtures import tiny_feature_store
    return tiny_feature_store(tmp_path_factory.mktemp("store"), max_tokens=8000).folder

def test_labelling_resumes_after_sigkill(tmp_path, store_dir):
    "Killed while requests are in flight: a rerun labels exactly the features with no record, each once; nothing recorded is asked for again."
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    from r1_interp.features.labels import LabelLog
    def slow(body): time.sleep(0.25); return rule_answer(body)
    env = dict(os.environ, ANTHROPIC_API_KEY="sk-test-not-a-real-key")
    log_path = tmp_path/"labels.jsonl"
    with FakeMessagesAPI(slow) as api:
        p = _run(LABEL, store_dir, log_path, api.url, env=env)
        t0 = time.time()
        while not log_path.exists() or len(log_path.read_text().splitlines()) < 6:
            assert p.poll() is None, p.stderr.read()[-2000:]
            assert time.time() - t0 < 120; time.sleep(0.05)
        p.send_signal(signal.SIGKILL); p.wait()
        first = LabelLog(log_path).read()
        assert 6 <= len(first) < 24, len(first)
        n_before = len(api.requests)
        p = _run(LABEL, store_dir, log_path, api.url, env=env); out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "DONE 24" in out, err[-3000:]
        asked_again = {r["body"]["messages"][0]["content"].split(" of layer")[0] for r in api.requests[n_before:]}
    recs = LabelLog(log_path).read()
    feats = [r["feature"] for r in recs]
    assert len(feats) == len(set(feats)) == 24, "every feature labelled exactly once"
    assert all(r["status"] == "ok" and r["labeller"] == "claude" for r in recs)
    assert not {f"Feature {r['feature']}" for r in first} & asked_again, "a feature labelled before the kill was asked for again"

@needs_chromium
def test_feature_page_shows_hostile_text_as_text(tmp_path, store_dir):
    "Corpus text and a label carrying markup and script are rendered as text in Chromium; no script runs; no console errors."
    import pyarrow as pa, pyarrow.parquet as pq, shutil
    from r1_interp.features.collect import FeatureStore
    from r1_interp.features.labels import label_record
    from r1_interp.features.pages import write_layer_page
    store_copy = tmp_path/"store"; shutil.copytree(store_dir, store_copy)
    vocab = pq.read_table(store_copy/"vocab.parquet").to_pandas()
    store = FeatureStore(store_copy)
    f = int(store.features(1).sort_values("count").feature.iloc[-1])
    top_tokens = store.examples(1, features=[f], kind="top").tokens.iloc[0]
    hostile = {int(top_tokens[0]): "<script>document.title='pwned-token'</script>", int(top_tokens[1]): '<img src=x onerror="document.title=\'pwned-img\'">'}
    for i, t in hostile.items(): vocab.loc[vocab.id == i, "text"] = t; vocab.loc[vocab.id == i, "bytes"] = t.encode()
    pq.write_table(pa.Table.from_pandas(vocab, preserve_index=False), store_copy/"vocab.parquet")
    meta = json.loads((store_copy/"meta.json").read_text())       # the store records its files' sizes: record the new vocabulary's
    meta["files"]["vocab.parquet"]["bytes"] = (store_copy/"vocab.parquet").stat().st_size
    (store_copy/"meta.json").write_text(json.dumps(meta))
    labels = pd.DataFrame([label_record(1, f, "claude", "m", label="<script>document.title='pwned-label'</script>", explanation="<b>bold</b>", confidence=0.5)])
    page = write_layer_page(FeatureStore(store_copy), 1, tmp_path/"layer_1.html", labels)
    dom, console = chromium_dom(page.as_uri(), tmp_path/"profile")
    assert "<title>Layer 1 features</title>" in dom, dom[:500]
    assert "pwned" not in dom.split("</head>")[0], "a script ran and changed the title"
    assert "&lt;script&gt;document.title='pwned-label'&lt;/script&gt;" in dom and "&lt;script&gt;document.title='pwned-token'" in dom
    assert "&lt;img src=x onerror=" in dom and "<img" not in dom and "<b>bold</b>" not in dom
    assert console == [], console
