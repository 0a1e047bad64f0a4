"""Claude's side of labelling through the real `anthropic` SDK and the local Messages API: a key the API refuses
stops a layer at its first request with one message (library, batch path and the label pipeline notebook); a key
revoked mid-run stops it without a request storm; models are checked against the installed SDK's own tables before
any request; costs are never guessed."""
import os, threading, warnings
from datetime import date, datetime, timezone
import pandas as pd
import pytest

@pytest.fixture(scope="module")
def known(tmp_path_factory):
    from r1_interp.features.scoring import known_feature_store, city_documents
    return known_feature_store(tmp_path_factory.mktemp("known"), city_documents(120), {0: " Paris", 1: " Berlin", 2: " France", 3: " Rome"})

def _labeller(url, **kw):
    from r1_interp.features.labels import ClaudeLabeller, claude_client
    return ClaudeLabeller(claude_client(base_url=url, **kw))

def test_refused_key_stops_labelling_and_scoring_at_the_first_request(known, tmp_path, monkeypatch):
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    from r1_interp.features.labels import LabelLog, FatalAPIError, label_features, label_features_batch, label_record
    from r1_interp.features.scoring import ClaudeRater, score_labels
    from r1_interp.features.labels import claude_client
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-wrong")
    with FakeMessagesAPI(rule_answer, api_key="sk-test-right") as api:
        log = LabelLog(tmp_path/"labels.jsonl")
        with pytest.raises(FatalAPIError, match="stopped at the first request.*401 authentication_error") as e:
            label_features(known, 0, log, _labeller(api.url), features=[0, 1, 2, 3], max_concurrency=4, echo=lambda *_: None)
        assert "sk-test-wrong" not in str(e.value)
        assert len(api.requests) == 1 and log.read() == []
        with pytest.raises(FatalAPIError, match="batch was not created.*401"):
            label_features_batch(known, 0, log, _labeller(api.url), tmp_path/"state.json", features=[0, 1, 2, 3], poll_seconds=0, echo=lambda *_: None)
        assert len(api.requests) == 2 and not (tmp_path/"state.json").exists()
        labels = pd.DataFrame([label_record(0, f, "claude", "m", label=f"the token '{t}'", confidence=1.0) for f, t in enumerate(["Paris", "Berlin", "France", "Rome"])])
        slog = LabelLog(tmp_path/"scores.jsonl", key=("layer", "feature", "method"))
        with pytest.raises(FatalAPIError, match="scores: stopped at the first request"):
            score_labels(known, 0, labels, slog, ClaudeRater(claude_client(base_url=api.url)), echo=lambda *_: None)
        assert len(api.requests) == 3 and slog.read() == []

def test_unknown_model_is_a_404_that_stops_the_layer(known, tmp_path, monkeypatch):
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    from r1_interp.features.labels import LabelLog, FatalAPIError, ClaudeLabeller, claude_client, label_features, ModelWarning
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-right")
    with FakeMessagesAPI(rule_answer, models={"claude-sonnet-4-6"}) as api:
        with pytest.warns(ModelWarning, match="not in the model list"):
            lab = ClaudeLabeller(claude_client(base_url=api.url), "claude-sonet-4-6")     # misspelt: warned, then refused by the API
        with pytest.raises(FatalAPIError, match="404 not_found_error.*'claude-sonet-4-6' does not exist"):
            label_features(known, 0, LabelLog(tmp_path/"l.jsonl"), lab, features=[0, 1, 2, 3], echo=lambda *_: None)
        assert len(api.requests) == 1

def test_key_revoked_mid_run_stops_without_a_storm_and_a_rerun_labels_the_rest(known, tmp_path, monkeypatch):
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    from r1_interp.features.labels import LabelLog, FatalAPIError, label_features
    answered, lock = [0], threading.Lock()
    def revoke_after_two(body):
        with lock:
            answered[0] += 1
            if answered[0] == 2: api.api_key = "sk-test-rotated"          # every later request is refused
        return rule_answer(body)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-right")
    feats = sorted(int(f) for f in known.features(0).feature)
    log = LabelLog(tmp_path/"labels.jsonl")
    with FakeMessagesAPI(revoke_after_two, api_key="sk-test-right") as api:
        with pytest.raises(FatalAPIError, match=r"stopped after \d+ of 4.*401"):
            label_features(known, 0, log, _labeller(api.url), features=feats, max_concurrency=1, echo=lambda *_: None)
        assert len(api.requests) == 3                                   # two answered, one refused, none after it
        assert [r["status"] for r in log.read()] == ["ok", "ok"]
        api.api_key = None; monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-rotated")
        df = label_features(known, 0, log, _labeller(api.url), features=feats, echo=lambda *_: None)
        assert (df.status == "ok").all() and len(log.read()) == 4 and len(api.requests) == 5

def test_models_checked_against_the_installed_sdk_at_run_time(monkeypatch):
    import anthropic._data
    from r1_interp.features.labels import (DEFAULT_CLAUDE_MODEL, LabelError, ModelWarning, check_model, sdk_models, sdk_deprecations, make_labeller,
                                  price_of)
    assert sdk_deprecations() is not None, "the installed SDK has no deprecation table: update sdk_deprecations"
    assert DEFAULT_CLAUDE_MODEL in sdk_models() and DEFAULT_CLAUDE_MODEL not in sdk_deprecations() and price_of(DEFAULT_CLAUDE_MODEL) == (3.0, 15.0)
    for model, (text, eol) in sdk_deprecations().items():
        assert eol is not None, f"the SDK's end-of-life date for {model} did not parse: {text!r}"
        with pytest.raises(LabelError, match="reached its end-of-life"): check_model(model, today=eol)
        with pytest.warns(ModelWarning, match="deprecated"): check_model(model, today=date.fromordinal(eol.toordinal() - 1))
    # a newer SDK that deprecates the default: read at run time, so refused with no change here
    monkeypatch.setitem(anthropic._data.DEPRECATED_MODELS, DEFAULT_CLAUDE_MODEL, "January 1st, 2020")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(LabelError, match=f"{DEFAULT_CLAUDE_MODEL}' reached its end-of-life on 2020-01-01"):
        make_labeller("claude", DEFAULT_CLAUDE_MODEL)                    # refused before the key is even looked for

def test_cost_is_unknown_not_guessed_for_a_model_without_a_price():
    from r1_interp.features.labels import cost_report, total_cost, label_record, price_of
    recs = pd.DataFrame([label_record(0, f, "claude", m, input_tokens=1_000_000, output_tokens=100_000) for f, m in
                         enumerate(["claude-sonnet-4-6", "claude-sonnet-4-5-20250929", "claude-opus-4-8", "claude-sonnet-5"])])
    rep = cost_report(recs).set_index("model")
    assert rep.cost_usd["claude-sonnet-4-6"] == pytest.approx(3.0 + 1.5) and rep.cost_usd["claude-sonnet-4-5-20250929"] == pytest.approx(4.5)
    assert rep.cost_usd[["claude-opus-4-8", "claude-sonnet-5"]].isna().all()
    assert rep.note["claude-opus-4-8"].startswith("cost unknown: no list price for claude-opus-4-8")
    assert total_cost(rep.reset_index()).startswith("unknown for 4 requests (no list price for claude-opus-4-8, claude-sonnet-5)")
    assert price_of("claude-sonnet-4-60") is None and price_of("claude-sonnet-4") == (3.0, 15.0)

def test_label_notebook_stops_with_one_message_on_a_refused_key(known, tmp_path, monkeypatch):
    "The pipeline notebook, as the runner executes it: one request, one FatalAPIError naming the cause, no records, no KeyError."
    import shutil
    import papermill as pm
    from pathlib import Path
    from r1_interp.testing.fake_api import FakeMessagesAPI, rule_answer
    nb = Path(__file__).resolve().parent.parent/"nbs"/"pipelines"/"label.ipynb"
    shutil.copytree(known.folder, tmp_path/"features"/"store")
    with FakeMessagesAPI(rule_answer, api_key="sk-test-right") as api:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-wrong"); monkeypatch.setenv("ANTHROPIC_BASE_URL", api.url)
        with pytest.raises(pm.PapermillExecutionError) as e:
            pm.execute_notebook(str(nb), str(tmp_path/"out.ipynb"), parameters=dict(outputs=str(tmp_path), layer=0,
                                                                                settings=dict(model="tiny-qwen2", labeller="claude", min_frequency=0.0)),
                                progress_bar=False, log_output=False)
        assert len(api.requests) == 1
    assert e.value.ename == "FatalAPIError" and "stopped at the first request" in e.value.evalue and "401 authentication_error" in e.value.evalue
    assert "ANTHROPIC_API_KEY" in e.value.evalue and "sk-test-wrong" not in e.value.evalue
    labels = tmp_path/"features"/"labels"/"layer_0"/"labels.jsonl"
    assert not labels.exists() or labels.read_text() == ""
