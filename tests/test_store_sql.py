"""The feature store as SQL and pandas users open it, with no r1-interp code: every per-layer table carries its layer,
DuckDB reads all layers in one glob and pandas reads the same rows, window text decodes whole characters, histogram
edges are in Parquet, no quantile is null, and the README's DuckDB query prints the top examples of a feature as the
text `FeatureStore` holds. One small real store (tiny-qwen2, random transcoders) serves every test."""
import contextlib, io, json, re
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# feature store query (tested)"
DEMO_STORE = "outputs/demo/features/store"

# The block for the README (nbs/index.ipynb); test_readme_query runs README's own copy.
QUERY = '''```python
# feature store query (tested)
import duckdb
store = "outputs/demo/features/store"
examples = f"read_parquet('{store}/layer_*/examples.parquet')"      # every layer at once: each row has its layer
# the feature with the strongest activation in the store, then its top examples as text
layer, feature = duckdb.execute(f"SELECT layer, feature FROM {examples} ORDER BY activation DESC, layer, feature LIMIT 1").fetchone()
rows = duckdb.execute(f"""SELECT layer, feature, activation, text FROM {examples}
                          WHERE layer = ? AND feature = ? AND kind = 'top' ORDER BY rank""", [layer, feature]).fetchall()
for layer, feature, activation, text in rows:
    print(f"layer {layer} feature {feature} {activation:8.3f} {text!r}")
```'''

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from r1_interp.testing.fixtures import tiny_feature_store
    return tiny_feature_store(tmp_path_factory.mktemp("sql"), max_tokens=4000)

def query_block(markdown:str) -> str|None:
    "The code of the ```python block whose first line is the marker, or None."
    m = re.search(r"```python\n(" + re.escape(MARKER) + r"\n.*?)```", markdown, re.S)
    return m.group(1) if m else None

def expected_lines(store) -> list[str]:
    "What the query must print, from FeatureStore: the strongest feature (by its maximum, ties by layer then feature), its top examples."
    best = min(((-float(fs.max_activation.max()), l, int(fs.feature[fs.max_activation == fs.max_activation.max()].min()))
                for l in store.layers for fs in [store.features(l)]))
    _, layer, feature = best
    top = store.examples(layer, features=[feature], kind="top")
    return [f"layer {layer} feature {feature} {a:8.3f} {t!r}" for a, t in zip(top.activation, top.window_text)]

def run_query(code:str, store) -> list[str]:
    assert code.count(f'"{DEMO_STORE}"') == 1, f"the query block must name the store once as \"{DEMO_STORE}\""
    out = io.StringIO()
    with contextlib.redirect_stdout(out): exec(code.replace(f'"{DEMO_STORE}"', repr(str(store.folder))), {})
    return out.getvalue().splitlines()

def test_query_prints_the_top_examples_as_text(store):
    lines = run_query(query_block(QUERY), store)
    assert len(lines) > 0 and lines == expected_lines(store)

def test_readme_query(store):
    block = query_block((ROOT/"README.md").read_text())
    assert block is not None, (f"README.md has no ```python block starting {MARKER!r}: put QUERY of tests/test_store_sql.py into "
                               "nbs/index.ipynb and regenerate README.md")
    assert run_query(block, store) == expected_lines(store)

def test_every_per_layer_table_has_its_layer(store):
    import pyarrow.parquet as pq
    files = sorted(store.folder.glob("layer_*/*.parquet"))
    assert sorted({p.name for p in files}) == ["examples.parquet", "features.parquet", "histograms.parquet"] and len(files) == 3 * len(store.layers)
    for p in files:
        layer = pq.read_table(p, columns=["layer"]).column("layer")
        assert set(layer.to_pylist()) == {int(p.parent.name.removeprefix("layer_"))}, p

@pytest.mark.parametrize("table", ["examples", "features", "histograms"])
def test_duckdb_over_all_layers_and_pandas_read_the_same(store, table):
    import duckdb
    files = sorted(store.folder.glob(f"layer_*/{table}.parquet"))
    cols = dict(examples="layer, feature, kind, rank, quantile, activation, text", features="layer, feature, count, max_activation",
                histograms="layer, feature, bin, lo, hi, count")[table]
    db = duckdb.sql(f"SELECT {cols} FROM read_parquet('{store.folder}/layer_*/{table}.parquet') ORDER BY ALL").df()
    pdf = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)[[c.strip() for c in cols.split(",")]]
    pdf = pdf.sort_values(list(pdf.columns), kind="stable").reset_index(drop=True)
    assert len(db) > 0 and sorted(db.layer.unique()) == store.layers
    pd.testing.assert_frame_equal(db, pdf, check_dtype=False)

def test_window_text_is_the_tokens_bytes_decoded_and_quantiles_are_set(store):
    for l in store.layers:
        ex = store.examples(l)
        assert ex.window_text.tolist() == [b"".join(store.token_bytes(t)).decode("utf-8", "replace") for t in ex.tokens]
        assert not ex["quantile"].isna().any()
        assert set(ex[ex.kind == "negative"]["quantile"]) == {-1}
        assert ex[ex.kind != "negative"]["quantile"].between(0, store.meta["n_quantiles"] - 1).all()
    with pytest.raises(IndexError, match="vocab.parquet: token id -1 is outside the vocabulary"): store.token_bytes([3, -1])

def test_histograms_hold_the_counts_with_their_edges(store):
    import duckdb
    edges = [0.0, *store.meta["hist_edges"], float("inf")]
    for l in store.layers:
        h, fs = store.histograms(l), store.features(l)
        assert (h["count"] > 0).all() and h.lo.tolist() == [edges[b] for b in h.bin] and h.hi.tolist() == [edges[b + 1] for b in h.bin]
        assert np.array_equal(h.groupby("feature")["count"].sum().reindex(fs.feature, fill_value=0).to_numpy(), fs["count"].to_numpy())
    # every active token lies in its bin: a feature's maximum is inside the last non-empty bin's edges
    q = duckdb.sql(f"""SELECT f.max_activation, h.lo, h.hi FROM read_parquet('{store.folder}/layer_*/features.parquet') f
                       JOIN (SELECT layer, feature, arg_max(lo, bin) lo, arg_max(hi, bin) hi FROM read_parquet('{store.folder}/layer_*/histograms.parquet')
                             GROUP BY ALL) h USING (layer, feature)""").df()
    assert len(q) and ((q.lo < q.max_activation) & (q.max_activation <= q.hi)).all()

def test_an_older_store_is_refused_with_what_to_do(store, tmp_path):
    import shutil
    from r1_interp.features.collect import FeatureStore, CollectError, store_problem
    old = tmp_path/"old"; shutil.copytree(store.folder, old)
    meta = json.loads((old/"meta.json").read_text()); del meta["format"]
    (old/"meta.json").write_text(json.dumps(meta))
    assert "format 1" in store_problem(old)
    with pytest.raises(CollectError, match=r"must be collected again.*--force collect"): FeatureStore(old)
