"""Every cached artefact of the features and graphs phases is keyed on what produced it: a label on its labeller, Claude
model, prompt and the feature store its examples came from; a score on the label it scores and the rater's settings;
a graph's node labels on the labels of its features. A changed input reruns exactly what depends on it (and, through
the real `anthropic` SDK against the local Messages API, sends exactly those requests); an unchanged one reruns
nothing."""
import json, re, shutil
from pathlib import Path
import pandas as pd
import pytest

RULES = {0: " Paris", 1: " Berlin", 2: " France", 3: " Rome"}
FEATURES = sorted(RULES)
quiet = dict(echo=lambda *_: None)

@pytest.fixture(scope="module")
def known(tmp_path_factory):
    from r1_interp.features.scoring import known_feature_store, city_documents
    return known_feature_store(tmp_path_factory.mktemp("known"), city_documents(120), RULES)

def requested(api, task="label") -> list[int]:
    "The feature of every `task` request ('label', 'detection', 'fuzzing') the fake API received, in order."
    from r1_interp.testing.fake_api import user_turns
    out = []
    for r in api.requests:
        b = r["body"] or {}
        if not b.get("messages") or not b["system"][0]["text"].startswith(f"TASK: {task}"): continue
        if task == "label": out.append(int(re.match(r"Feature (\d+) of layer", user_turns(b)[0])[1]))
        else: out.append(json.loads(user_turns(b)[0].split("Description of the feature: ", 1)[1].split("\n", 1)[0]))
    return out

def claude(url, model="claude-sonnet-4-6"):
    from r1_interp.features.labels import ClaudeLabeller, claude_client
    return ClaudeLabeller(claude_client(base_url=url), model)

def test_claude_after_heuristic_labels_every_feature_once_and_a_rerun_sends_nothing(known, tmp_path, monkeypatch):
    "The issue's case: heuristic labels, then `--labeller claude`: every feature is requested once; the same again: none."
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    from r1_interp.features.labels import LabelLog, HeuristicLabeller, label_features
    log = LabelLog(tmp_path/"labels.jsonl")
    h = label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, **quiet)
    assert (h.status == "ok").all() and (h.labeller == "heuristic").all() and h.label.tolist()[0] == "fires on 'Paris'"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-right")
    with FakeMessagesAPI(rule_answer) as api:
        c = label_features(known, 0, log, claude(api.url), features=FEATURES, **quiet)
        assert sorted(requested(api)) == FEATURES                        # each feature once, none skipped as 'labelled'
        assert (c.labeller == "claude").all() and (c.model == "claude-sonnet-4-6").all() and c.label.tolist()[0] == "the token 'Paris'"
        assert c.prompt.str.startswith("label:").all() and (c.source == h.source).all() and h.source.str.startswith("store:").all()
        n_lines = len(log.read())
        again = label_features(known, 0, log, claude(api.url), features=FEATURES, **quiet)
        assert len(requested(api)) == len(FEATURES) and len(log.read()) == n_lines     # resume is exact: nothing sent, nothing written
        pd.testing.assert_frame_equal(again, c)
        other = label_features(known, 0, log, claude(api.url, "claude-haiku-4-5"), features=FEATURES, **quiet)
        assert sorted(requested(api)[len(FEATURES):]) == FEATURES and (other.model == "claude-haiku-4-5").all()
    back = label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, **quiet)
    assert (back.labeller == "heuristic").all() and back.label.tolist() == h.label.tolist()
    assert (back.prompt == h.prompt).all() and (back.source == h.source).all()

def test_only_records_of_other_settings_are_redone(known, tmp_path):
    "Another heuristic setting, another store, a record without the keys (written before them): redone; the rest kept."
    from r1_interp.features.labels import LabelLog, HeuristicLabeller, label_features, labeller_settings
    log = LabelLog(tmp_path/"labels.jsonl")
    label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, **quiet)
    recs = {r["feature"]: r for r in log.read()}
    old = {k: v for k, v in recs[1].items() if k not in ("prompt", "source")}      # feature 1 as an older version wrote it
    bigger = dict(recs[2], prompt=labeller_settings(HeuristicLabeller(n_tokens=5))["prompt"])   # feature 2 by other settings
    other_store = dict(recs[3], source="store:0123456789abcdef/top20")             # feature 3 from another feature store
    for r in (old, bigger, other_store): log.append(r)
    n = len(log.read())
    df = label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, **quiet)
    assert sorted(r["feature"] for r in log.read()[n:]) == [1, 2, 3]              # feature 0 kept, the three others redone
    assert df.prompt.nunique() == 1 and df.source.nunique() == 1
    n = len(log.read())
    label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, **quiet)
    assert len(log.read()) == n
    label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, n_examples=3, **quiet)   # shown fewer contexts: another input
    assert sorted(r["feature"] for r in log.read()[n:]) == FEATURES

def test_batch_results_are_keyed_and_an_inflight_batch_of_other_settings_is_not_taken(known, tmp_path, monkeypatch):
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    from r1_interp.features.labels import LabelLog, HeuristicLabeller, LabelError, label_features, label_features_batch
    log, state = LabelLog(tmp_path/"labels.jsonl"), tmp_path/"batch_state.json"
    label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, **quiet)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-right")
    with FakeMessagesAPI(rule_answer) as api:
        df = label_features_batch(known, 0, log, claude(api.url), state, features=FEATURES, poll_seconds=0, **quiet)
        assert len(api.batches) == 1 and len(next(iter(api.batches.values()))["requests"]) == len(FEATURES)
        assert (df.labeller == "claude").all() and df.batch.all() and df.prompt.str.startswith("label:").all()
        label_features_batch(known, 0, log, claude(api.url), state, features=FEATURES, poll_seconds=0, **quiet)
        assert len(api.batches) == 1                                         # nothing to do: no batch
        state.write_text(json.dumps(dict(batch_id="msgbatch_x", layer=0, features=FEATURES, created=0.0,
                                         producer=dict(labeller="claude", model="claude-haiku-4-5", prompt="label:x", source="y"))))
        with pytest.raises(LabelError, match="batch_state.json: an in-flight batch made by other settings.*claude-haiku-4-5"):
            label_features_batch(known, 0, log, claude(api.url), state, features=FEATURES, poll_seconds=0, **quiet)

def test_scores_are_keyed_on_the_label_and_the_rater_settings(known, tmp_path):
    from r1_interp.features.labels import LabelLog, HeuristicLabeller, label_features, label_record
    from r1_interp.features.scoring import TokenMatchRater, score_labels
    labels = label_features(known, 0, LabelLog(tmp_path/"labels.jsonl"), HeuristicLabeller(), features=FEATURES, **quiet)
    slog = LabelLog(tmp_path/"scores.jsonl", key=("layer", "feature", "method"))
    s = score_labels(known, 0, labels, slog, TokenMatchRater(), n=6, **quiet)
    assert len(s) == 2 * len(FEATURES) and s.prompt.notna().all() and s.source.notna().all()
    n = len(slog.read())
    score_labels(known, 0, labels, slog, TokenMatchRater(), n=6, **quiet)
    assert len(slog.read()) == n                                           # same labels, same rater: nothing redone
    relabelled = labels.copy(); relabelled.loc[relabelled.feature == 1, "label"] = "the word 'Berlin'"
    s2 = score_labels(known, 0, relabelled, slog, TokenMatchRater(), n=6, **quiet)
    new = slog.read()[n:]
    assert sorted((r["feature"], r["method"]) for r in new) == [(1, "detection"), (1, "fuzzing")]   # a new label: a new score, only it
    assert s2.set_index(["feature", "method"]).label[(1, "fuzzing")] == "the word 'Berlin'"
    n = len(slog.read())
    score_labels(known, 0, relabelled, slog, TokenMatchRater(), n=8, **quiet)   # more scoring contexts: another rater setting
    assert len(slog.read()) == n + 2 * len(FEATURES)
    n = len(slog.read())
    by_claude = relabelled.assign(labeller="claude", model="claude-sonnet-4-6")  # the same texts from another labeller
    score_labels(known, 0, by_claude, slog, TokenMatchRater(), n=8, **quiet)
    assert len(slog.read()) == n + 2 * len(FEATURES)

def test_labels_digest_follows_the_labels_not_the_files(known, tmp_path):
    from r1_interp.features.labels import LabelLog, HeuristicLabeller, label_features, labels_digest, label_record
    d = tmp_path/"labels"
    log = LabelLog(d/"layer_0"/"labels.jsonl")
    label_features(known, 0, log, HeuristicLabeller(), features=FEATURES, **quiet)
    first = labels_digest(d)
    assert re.fullmatch(r"[0-9a-f]{16}", first) and labels_digest(d, [0]) == first and labels_digest(d, [1]) != first
    log.append(label_record(0, 2, "claude", "m", "failed", error="overloaded"))  # the last record a failure: feature 2 has no label
    assert labels_digest(d) != first
    log.append(next(r for r in log.read() if r["feature"] == 2 and r["status"] == "ok"))   # the same label again: same content
    assert labels_digest(d) == first
    log.append(label_record(0, 3, "claude", "m", label="the word 'Rome'", confidence=0.9))
    assert labels_digest(d) != first
    assert labels_digest(tmp_path/"nothing") == labels_digest(tmp_path/"nothing2")    # no labels: one fixed digest

def test_label_notebook_relabels_with_claude_after_heuristic_labels_and_then_sends_nothing(known, tmp_path, monkeypatch):
    "The label pipeline notebook as `--force label --labeller claude` runs it after a heuristic run, then the same again."
    import papermill as pm
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    from r1_interp.features.labels import LabelLog
    nb = str(Path(__file__).resolve().parent.parent/"nbs"/"pipelines"/"label.ipynb")
    shutil.copytree(known.folder, tmp_path/"features"/"store")
    settings = dict(model="tiny-qwen2", min_frequency=0.0, n_score=3, page_features=10)
    def run(name, **kw):
        pm.execute_notebook(nb, str(tmp_path/f"{name}.ipynb"), parameters=dict(outputs=str(tmp_path), layer=0, settings=dict(settings, **kw)),
                            progress_bar=False, log_output=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    run("heuristic", labeller="heuristic")
    log = LabelLog(tmp_path/"features"/"labels"/"layer_0"/"labels.jsonl")
    scores = LabelLog(tmp_path/"features"/"labels"/"layer_0"/"scores.jsonl", key=("layer", "feature", "method"))
    assert sorted(f for _, f in log.latest()) == FEATURES and {r["labeller"] for r in log.latest().values()} == {"heuristic"}
    assert {r["rater"] for r in scores.latest().values()} == {"token-match"}
    with FakeMessagesAPI(rule_answer) as api:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-right"); monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        run("claude", labeller="claude")
        assert sorted(requested(api)) == FEATURES
        latest = log.latest().values()
        assert {(r["labeller"], r["model"], r["status"]) for r in latest} == {("claude", "claude-sonnet-4-6", "ok")}
        for m in ("detection", "fuzzing"):                                  # every new label scored once by Claude
            assert sorted(requested(api, m)) == sorted(r["label"] for r in latest)
        assert {(r["rater"], r["label"]) for r in scores.latest().values()} == {("claude", r["label"]) for r in latest}
        n = len(api.requests)
        run("again", labeller="claude")
        assert len(api.requests) == n                                       # the same settings again: not one request

@pytest.fixture(scope="module")
def replacement(tmp_path_factory):
    from r1_interp.models.registry import resolve_model_path
    from r1_interp.transcoders.io import export_circuit_tracer, random_transcoders
    from r1_interp.graphs.replacement import load_replacement_model
    ct = export_circuit_tracer(random_transcoders(64, 2), tmp_path_factory.mktemp("ct")/"ct", resolve_model_path("tiny-qwen2"))
    return load_replacement_model("tiny-qwen2", ct)

def clerps(path) -> dict:
    "{(layer, feature): clerp} of the feature nodes of a graph JSON."
    nodes = json.loads(Path(path).read_text())["nodes"]
    return {(int(n["layer"]), int(n["node_id"].split("_")[1])): n["clerp"] for n in nodes if n["feature_type"] == "cross layer transcoder"}

def mtimes(out) -> dict:
    "{file: modification time} below `out`, but the folder index (graph-metadata.json), which every run rewrites."
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in Path(out).rglob("*") if p.is_file() and p.name != "graph-metadata.json"}

def test_graphs_carry_the_labels_of_the_last_relabel_and_unchanged_graphs_are_not_rewritten(replacement, tmp_path):
    from r1_interp.models.prompts import BENCHMARK_PROMPTS
    from r1_interp.graphs.attribution import generate_graphs, graphs_digest
    from r1_interp.features.labels import LabelLog, label_record, read_labels
    rm, prompts, out, lab = replacement, BENCHMARK_PROMPTS[:1], tmp_path/"graphs", tmp_path/"labels"
    logs = {l: LabelLog(lab/f"layer_{l}"/"labels.jsonl") for l in (0, 1)}
    for l, log in logs.items():
        for f in range(256): log.append(label_record(l, f, "heuristic", None, label=f"fires on 'h{l}.{f}'", confidence=1.0))
    kw = dict(max_n_logits=5, batch_size=64, echo=lambda *_: None)
    s1 = generate_graphs(rm, rm.tokenizer, prompts, out, labels=read_labels(lab), **kw)
    path = s1.path.iloc[0]
    first = clerps(path)
    assert first and all(v == f"fires on 'h{l}.{f}'" for (l, f), v in first.items())
    before, structure, labelled = mtimes(out), graphs_digest(out), graphs_digest(out, with_labels=True)
    for l, log in logs.items():                                                  # relabel every feature with Claude
        for f in range(256): log.append(label_record(l, f, "claude", "claude-sonnet-4-6", label=f"the token 'c{l}.{f}'", confidence=0.9))
    logged = []
    generate_graphs(rm, rm.tokenizer, prompts, out, labels=read_labels(lab), **dict(kw, echo=logged.append))
    second = clerps(path)
    assert second.keys() == first.keys() and all(v == f"the token 'c{l}.{f}'" for (l, f), v in second.items())
    after = mtimes(out)
    assert after[f"json/{prompts[0].category}/{prompts[0].id}.json"] != before[f"json/{prompts[0].category}/{prompts[0].id}.json"]
    full = f"full/{prompts[0].category}/{prompts[0].id}.safetensors"
    assert after[full] == before[full] and any("labels changed" in l for l in logged)    # clerps rewritten, not re-attributed
    assert graphs_digest(out) == structure and graphs_digest(out, with_labels=True) != labelled
    generate_graphs(rm, rm.tokenizer, prompts, out, labels=read_labels(lab), **kw)        # the same labels: nothing rewritten
    unchanged = mtimes(out)
    assert unchanged == after
    (l, f) = next(k for k in [(0, g) for g in range(256)] + [(1, g) for g in range(256)] if k not in first)
    logs[l].append(label_record(l, f, "claude", "claude-sonnet-4-6", label="a feature outside the graph", confidence=0.5))
    generate_graphs(rm, rm.tokenizer, prompts, out, labels=read_labels(lab), **kw)        # a label outside the graph: not rewritten
    assert mtimes(out) == after
    rec_path = out/"records"/prompts[0].category/f"{prompts[0].id}.json"                # a record as written before the digests
    rec = json.loads(rec_path.read_text())
    old = {k: v for k, v in rec.items() if k not in ("labels_digest", "structure_digest")} | dict(key=dict(rec["key"], labelled=True))
    rec_path.write_text(json.dumps(old))
    assert graphs_digest(out) == structure                                              # computed from its JSON
    generate_graphs(rm, rm.tokenizer, prompts, out, labels=read_labels(lab), **kw)      # kept its attribution, took the digests
    assert mtimes(out)[full] == before[full] and clerps(path) == second
    assert json.loads(rec_path.read_text())["labels_digest"] == rec["labels_digest"] and "labelled" not in json.loads(rec_path.read_text())["key"]
    shutil.rmtree(lab)
    generate_graphs(rm, rm.tokenizer, prompts, out, labels=read_labels(lab) or None, **kw)  # labels gone: the clerps go too
    assert set(clerps(path).values()) == {""}
