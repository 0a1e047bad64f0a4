"""The offline token-match rater against features whose truth is known (they fire exactly on ' Paris'): the right
label scores high; a neighbouring token ('France'), a substring ('Par') and a wrong token score at chance; negated
labels are unrated and left out of the summary. Scoring positives never come from a chunk the labeller was shown."""
import pandas as pd
import pytest

LABELS = {0: "fires on 'Paris'", 1: "fires on every token EXCEPT 'Paris'", 2: "never fires on 'Paris'", 3: "the word 'France'",
          4: "the token 'Par'", 5: "fires on \"Berlin\"", 6: "anything but 'Paris'", 7: "not the token 'Paris'",
          8: "the capital of France", 9: "fires on 'Paris' and 'France'"}

@pytest.fixture(scope="module")
def known(tmp_path_factory):
    from r1_interp.features.scoring import known_feature_store, city_documents
    return known_feature_store(tmp_path_factory.mktemp("known"), city_documents(300), {f: " Paris" for f in LABELS})

@pytest.fixture(scope="module")
def scores(known, tmp_path_factory):
    from r1_interp.features.labels import LabelLog, label_record
    from r1_interp.features.scoring import TokenMatchRater, score_labels
    labels = pd.DataFrame([label_record(0, f, "test", None, label=l, confidence=1.0) for f, l in LABELS.items()])
    log = LabelLog(tmp_path_factory.mktemp("scores")/"scores.jsonl", key=("layer", "feature", "method"))
    return score_labels(known, 0, labels, log, TokenMatchRater(), n=10, echo=lambda *_: None).set_index(["feature", "method"])

@pytest.mark.parametrize("method", ["detection", "fuzzing"])
def test_right_label_scores_high(scores, method):
    r = scores.loc[(0, method)]
    assert r.status == "ok" and r.score >= 0.95 and r.n_pos >= 5 and r.n_neg >= 5, r.to_dict()

@pytest.mark.parametrize("method", ["detection", "fuzzing"])
@pytest.mark.parametrize("feature", [3, 4, 5], ids=["neighbour 'France'", "substring 'Par'", "wrong token 'Berlin'"])
def test_neighbour_substring_and_wrong_labels_score_at_chance(scores, feature, method):
    r = scores.loc[(feature, method)]
    assert r.status == "ok" and abs(r.score - 0.5) <= 0.1, (LABELS[feature], r.to_dict())
    assert r.tpr <= 0.1, "the label's token was credited with the feature's activations"

@pytest.mark.parametrize("method", ["detection", "fuzzing"])
@pytest.mark.parametrize("feature", [1, 2, 6, 7])
def test_negated_labels_are_unrated_never_scored(scores, feature, method):
    r = scores.loc[(feature, method)]
    assert r.status == "unrated" and pd.isna(r.score) and "negated" in r.note, (LABELS[feature], r.to_dict())

def test_label_quoting_nothing_is_unrated_and_a_token_list_is_rated(scores):
    assert (scores.loc[8].status == "unrated").all() and scores.loc[8].note.str.contains("quotes no token").all()
    assert scores.loc[(9, "detection")].score >= 0.95                  # 'Paris' among the named tokens still finds it

def test_summary_leaves_unrated_out(scores):
    from r1_interp.features.scoring import score_summary
    s = score_summary(scores.reset_index()).set_index("method")
    n_unrated = 5                                                      # features 1, 2, 6, 7, 8
    for m in ("detection", "fuzzing"):
        assert s.loc[m, "unrated"] == n_unrated and s.loc[m, "scored"] == len(LABELS) - n_unrated and s.loc[m, "failed"] == 0
        ok = scores.xs(m, level="method").query("status == 'ok'").score.astype(float)
        assert s.loc[m, "mean"] == pytest.approx(ok.mean())

def test_heuristic_label_of_the_known_feature(known, tmp_path):
    "The offline labeller names ' Paris' (stripped) and the rater reads its own labeller's labels."
    from r1_interp.features.labels import LabelLog, HeuristicLabeller, label_features
    from r1_interp.features.scoring import TokenMatchRater, score_labels
    labels = label_features(known, 0, LabelLog(tmp_path/"l.jsonl"), HeuristicLabeller(), features=[0], echo=lambda *_: None)
    assert labels.label.tolist() == ["fires on 'Paris'"]
    sc = score_labels(known, 0, labels, LabelLog(tmp_path/"s.jsonl", key=("layer", "feature", "method")), TokenMatchRater(), n=10, echo=lambda *_: None)
    assert (sc.score >= 0.95).all()

@pytest.mark.parametrize("n_examples", [None, 3])
def test_scoring_positives_never_shown_to_the_labeller(tmp_path, n_examples):
    "On a store with few activating chunks (so the top and sampled contexts overlap a lot), exclusion by chunk leaves none."
    from r1_interp.features.scoring import known_feature_store, city_documents, shown_overlap, shown_chunks, scoring_set
    store = known_feature_store(tmp_path, city_documents(40), {0: " Paris", 1: " Berlin", 2: " France"}, n_top=8, n_sample=16)
    ov = shown_overlap(store, 0, [0, 1, 2], n=8, n_examples=n_examples)
    assert ov["without_exclusion"]["shown"] > 0, ov                   # the old rule did score the labeller's contexts
    assert ov["with_exclusion"]["shown"] == 0 and ov["with_exclusion"]["positives"] > 0, ov
    ex = store.examples(0)
    for f, g in ex.groupby("feature"):
        s = scoring_set(g, n=8, n_examples=n_examples)
        shown = shown_chunks(g, n_examples)
        assert len(shown) == (8 if n_examples is None else n_examples)
        assert not {c["chunk"] for c in s["pos"]} & shown
        assert s["excluded"] == g[(g.kind == "sample") & g.chunk.isin(list(shown))].shape[0]
