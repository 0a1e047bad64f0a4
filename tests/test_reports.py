"Readable reports: whole characters in feature pages, legible graph plots, and the index page's figures."
import base64, json, re
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from r1_interp.features.pages import token_texts, tokens_html

def _tiny_tokenizer():
    "The tiny Qwen2 tokenizer (cached folder) through the `tokenizers` library: the same tokenizer.json transformers loads."
    from tokenizers import Tokenizer
    from r1_interp.models.registry import tiny_qwen2_folder
    return Tokenizer.from_file(str(tiny_qwen2_folder()/"tokenizer.json"))

def _raw_bytes(tok, ids) -> list[bytes]:
    "Each token's raw bytes through the byte-level alphabet (GPT-2's bytes_to_unicode, which the tiny tokenizer uses)."
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode
    back = {c: b for b, c in bytes_to_unicode().items()}
    return [bytes(back[c] for c in tok.id_to_token(i)) for i in ids]

def test_split_characters_shown_whole_with_the_real_tokenizer():
    tok = _tiny_tokenizer()
    text = "Tokyo 東京 is 🙂 nice; naïve café"
    ids = tok.encode(text, add_special_tokens=False).ids
    alone = [tok.decode([i]) for i in ids]
    assert sum("\ufffd" in t for t in alone) >= 8           # the tokenizer really splits these characters
    shown = token_texts(_raw_bytes(tok, ids))
    assert len(shown) == len(ids) and "".join(shown) == text and not any("\ufffd" in t for t in shown)
    for ch in ("東", "京", "🙂", "ï", "é"): assert ch in shown, (ch, shown)   # each on the token that completes it
    assert shown.count("") >= 6                             # the tokens holding only first bytes show nothing
    page = tokens_html(shown, np.linspace(0, 1, len(ids)))
    assert page.count('class="t') == len(ids) and "東" in page and "\ufffd" not in page and page.count(" part") == shown.count("")

def test_window_cut_inside_a_character_is_marked():
    b = "🙂".encode()
    assert token_texts([b[2:], b"ok", b[:3]]) == ["\ufffd\ufffd", "ok", "\ufffd"]

def _graph_json(n_pos:int, slug:str) -> dict:
    nodes = ([dict(node_id=f"E_{p}", feature_type="embedding", layer="E", ctx_idx=p) for p in range(n_pos)]
             + [dict(node_id=f"0_{p}", feature_type="cross layer transcoder", layer="0", ctx_idx=p, feature=p) for p in range(0, n_pos, 2)]
             + [dict(node_id=f"L_{k}", feature_type="logit", layer="2", ctx_idx=n_pos - 1, clerp=f'Output "w{k}" (p=0.1)') for k in range(8)])
    links = ([dict(source=f"E_{p}", target=f"0_{p}", weight=1.0) for p in range(0, n_pos, 2)]
             + [dict(source=f"0_{p}", target=f"L_{k}", weight=0.5 - k % 2) for p in range(0, n_pos, 2) for k in range(8)])
    return dict(metadata=dict(slug=slug, prompt_tokens=[f" t{p}" for p in range(n_pos)]), nodes=nodes, links=links)

def test_long_prompt_plot_has_no_overlapping_labels():
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from r1_interp.core.graph_json import parse_graph
    from r1_interp.graphs.plot import plot_graph_top, overlapping_labels
    for n in (6, 150):
        ax = plot_graph_top(parse_graph(_graph_json(n, "g"), "g", None, 0.0, True), n_nodes=60)
        assert overlapping_labels(ax) == [], n
        assert sum(t.get_text().startswith("Output") for t in ax.texts) == 8
        plt.close("all")

def _pngs(page:str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', page)]

def test_index_figures(tmp_path):
    from r1_interp.pipeline.report import write_index
    from r1_interp.pipeline.phases import project_root
    out = tmp_path/"out"
    empty = write_index(project_root(), "tiny", out).read_text()
    assert _pngs(empty) == [] and "<script" not in empty         # no data: no figure, and the sections say so
    layers = [dict(layer=l, fvu=0.3, ce_increase=0.02 * (l + 1), ce_increase_se=0.004, ce_increase_zero_ablation=1.0,
                   ce_increase_zero_ablation_se=0.05, ce_increase_mean_ablation=0.3, ce_increase_mean_ablation_se=0.01, tokens=4000)
              for l in range(3)]
    ck = out/"train"/"checkpoints"/"layers_0-2"; ck.mkdir(parents=True)
    (ck/"eval.json").write_text(json.dumps(dict(run="layers_0-2", tokens_trained=1000, excluded_token_ids=[0], layers=layers)))
    pages, labels = out/"features"/"pages", out/"features"/"labels"/"layer_0"
    pages.mkdir(parents=True); labels.mkdir(parents=True)
    (pages/"layer_0.json").write_text(json.dumps(dict(layer=0, page="layer_0.html", features=64, alive=60, labelled=3, failed=0,
                                                      labellers=["heuristic"], detection=0.7, fuzzing=0.6, unrated=0)))
    (labels/"scores.jsonl").write_text("".join(json.dumps(dict(layer=0, feature=f, method=m, score=s, status="ok")) + "\n"
                                               for f, s in enumerate([0.5, 0.75, 1.0]) for m in ("detection", "fuzzing")))
    gdir = out/"graphs"/"json"/"arith"; gdir.mkdir(parents=True)
    rows = []
    for i in range(3):
        (gdir/f"g{i}.json").write_text(json.dumps(_graph_json(5 + i, f"arith/g{i}")))
        rows.append(dict(category="arith", id=f"g{i}", tokens=5 + i, replacement_score=0.8, completeness_score=0.9, verdict="ok",
                         path=str(gdir/f"g{i}.json")))
    pd.DataFrame(rows).to_csv(out/"graphs"/"summary.csv", index=False)
    (out/"compare").mkdir()
    pd.DataFrame([dict(comparison="think ~ answer", statistic="ffl_log_ratio", paired=True, n_a=6, n_b=6, effect=0.2,
                       ci_low=-0.1, ci_high=0.5, effect_size=0.4, detectable=0.71),
                  dict(comparison="correct vs incorrect", statistic="ffl_log_ratio", n_a=0, n_b=0, effect=None, ci_low=None, ci_high=None)]
                 ).to_csv(out/"compare"/"comparisons.csv", index=False)
    page = write_index(project_root(), "tiny", out).read_text()
    pngs = _pngs(page)
    assert len(pngs) == 3 + 3 and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)   # faithfulness, scores, 3 thumbnails, effects
    assert page.count('class="thumb"') == 3 and "?slug=arith/g0" in page and "r1-interp serve" in page
    assert "no effect with an interval (not enough graphs): correct vs incorrect (ffl_log_ratio)" in page and "<script" not in page
    assert ("Power: with 6 pairs, the smallest difference in ffl_log_ratio this comparison detects with 80% power at "
            "alpha 0.05 is 0.71 (observed effect 0.2, d = 0.40)") in page
    import matplotlib.image as mpimg, io
    assert all(mpimg.imread(io.BytesIO(p)).shape[2] in (3, 4) for p in pngs)      # each decodes as an image
