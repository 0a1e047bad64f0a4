"""The console script end to end: prepare on tiny-qwen2, a fast clear failure for an unreachable hub id, a batch
failure that names its cell, and a run killed mid-notebook that reruns cleanly."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from r1_interp.core.io import hub_reachable
from r1_interp.testing.fixtures import make_notebook
from conftest import r1_interp_cmd

def run_cli(*args, timeout=600, **kw):
    return subprocess.run(r1_interp_cmd() + list(args), capture_output=True, text=True, timeout=timeout, **kw)

def test_prepare_tiny_qwen2(tmp_path):
    r = run_cli("prepare", "--preset", "tiny", "--model", "tiny-qwen2", "--outputs", str(tmp_path))
    assert r.returncode == 0, r.stderr
    out = tmp_path/"prepare"
    assert {p.name for p in out.iterdir()} == {"tiny-qwen2.ipynb", "tiny-qwen2.html", "tiny-qwen2.run.json"}
    assert json.loads((out/"tiny-qwen2.run.json").read_text())["status"] == "ok"
    meta = json.loads((tmp_path/"data"/"tiny-qwen2"/"corpus"/"meta.json").read_text())
    assert meta["n_chunks"] == 16384 // 64 and meta["n_eval"] > 0
    html = (out/"tiny-qwen2.html").read_text()
    assert "think_single_token" in html and "n_chunks" in html and "data:image/png;base64" in html
    again = run_cli("prepare", "--preset", "tiny", "--outputs", str(tmp_path))
    assert again.returncode == 0 and "skipped" in again.stdout

@pytest.mark.skipif(hub_reachable(), reason="the hub is reachable from here: the offline failure cannot be shown")
def test_unreachable_hub_id_fails_fast_and_clearly(tmp_path):
    r = run_cli("prepare", "--preset", "tiny", "--model", "no-such-org/no-such-model", "--outputs", str(tmp_path), timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("error: model 'no-such-org/no-such-model' is not a local folder")
    assert "--model DIR" in r.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written"

def _fake_project(tmp_path, cells, params="x = 1"):
    (tmp_path/"nbs"/"pipelines").mkdir(parents=True)
    make_notebook(cells, tmp_path/"nbs"/"pipelines"/"prepare.ipynb", parameters=params)
    (tmp_path/"params"/"p").mkdir(parents=True)
    (tmp_path/"params"/"p"/"prepare.yaml").write_text("model: tiny-qwen2\n")
    return tmp_path

def test_failing_notebook_exits_nonzero_naming_cell(tmp_path):
    proj = _fake_project(tmp_path, ["y = 2", "raise RuntimeError('phase broke here')"])
    r = run_cli("run", "--root", str(proj), "--preset", "p")
    assert r.returncode == 1
    line = [l for l in r.stderr.splitlines() if l.startswith("FAILED")][0]
    assert "prepare/tiny-qwen2.ipynb: cell 3: RuntimeError: phase broke here" in line
    rec = json.loads((proj/"outputs"/"p"/"prepare"/"tiny-qwen2.run.json").read_text())
    assert rec["status"] == "failed" and rec["cell"] == 3
    assert (proj/"outputs"/"p"/"prepare"/"tiny-qwen2.failed.ipynb").exists()
    assert not (proj/"outputs"/"p"/"prepare"/"tiny-qwen2.ipynb").exists()

def test_killed_run_is_not_complete_and_reruns(tmp_path):
    flag = tmp_path/"started"
    proj = _fake_project(tmp_path, [f"import pathlib, time\npathlib.Path({str(flag)!r}).write_text('x')\ntime.sleep(float(__import__('os').environ.get('R1_TEST_SLEEP', '0')))", "print('finished')"])
    env = dict(os.environ, R1_TEST_SLEEP="600")
    p = subprocess.Popen(r1_interp_cmd() + ["run", "--root", str(proj), "--preset", "p"], env=env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert p.poll() is None and time.monotonic() < deadline, "the notebook never started"
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    out = proj/"outputs"/"p"/"prepare"
    assert not (out/"tiny-qwen2.ipynb").exists() and not (out/"tiny-qwen2.html").exists()
    assert json.loads((out/"tiny-qwen2.run.json").read_text())["status"] == "running"
    r = run_cli("run", "--root", str(proj), "--preset", "p")
    assert r.returncode == 0 and "ok:" in r.stdout, r.stderr
    assert (out/"tiny-qwen2.ipynb").exists() and json.loads((out/"tiny-qwen2.run.json").read_text())["status"] == "ok"
    assert not [f for f in out.iterdir() if ".tmp." in f.name], "the rerun clears the killed run's temporaries"

def test_prepare_model_override_on_the_default_preset(tmp_path):
    "`r1-interp prepare --model tiny-qwen2` (the demo preset, whose other phases need 30 layers) prepares the tiny model."
    r = run_cli("prepare", "--model", "tiny-qwen2", "--outputs", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path/"prepare"/"tiny-qwen2.html").exists()
    assert json.loads((tmp_path/"data"/"tiny-qwen2"/"corpus"/"meta.json").read_text())["ctx_len"] == 128

def test_bad_presets_fail_before_any_work(tmp_path):
    "A layer out of range, a corpus that yields no text and an outputs folder that cannot be written: exit 2, one clear message, nothing written."
    (tmp_path/"empty.txt").write_text("\n  \n")
    (tmp_path/"a-file").write_text("")
    cases = [(["--layers", "0,7"], "key 'layers': expected layer indices from 0 to 1"),
             (["--corpus", str(tmp_path/"empty.txt")], "yields no text, so no tokens"),
             (["--outputs", str(tmp_path/"a-file"/"out")], "cannot write there")]
    for extra, message in cases:
        out = tmp_path/"out"
        args = ["run", "--preset", "tiny", "--phase", "prepare", "--phase", "train"] + (extra if "--outputs" in extra else extra + ["--outputs", str(out)])
        r = run_cli(*args, timeout=120)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)
        assert not out.exists(), f"{extra}: work started"


# ---- every number on the command line is checked as it is parsed ---------------------------------------------------
import argparse, contextlib, io
from r1_interp.pipeline.cli import main, _parser, _layer_list

MINIMAL = {("train",): ["--nproc", "1"], ("motifs",): ["g.json"], ("graph", "check"): ["g.json"], ("graph", "fetch"): ["slug"],
           ("check", "model"): ["--model", "m"], ("serve",): ["dir"]}

def _options(parser, words=()):
    "(command words, option action) of every option of every command and subcommand."
    for act in parser._actions:
        if isinstance(act, argparse._SubParsersAction):
            for name, sub in act.choices.items(): yield from _options(sub, words + (name,))
        elif act.option_strings and act.type is not None: yield words, act

OPTIONS = list(_options(_parser()))
CHECKED = [(w, a) for w, a in OPTIONS if a.type is not _layer_list]
ids = lambda opts: [" ".join(w) + " " + a.option_strings[0] for w, a in opts]

def parse_error(args) -> str:
    "stderr of argparse refusing `args` (it must exit with status 2)."
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e: _parser().parse_args(args)
    assert e.value.code == 2, args
    return err.getvalue()

def test_every_typed_option_is_checked():
    assert len(CHECKED) >= 15
    for words, act in CHECKED:
        assert act.type not in (int, float) and hasattr(act.type, "tp"), (words, act.option_strings)

@pytest.mark.parametrize("words,act", CHECKED, ids=ids(CHECKED))
def test_numeric_options_reject_non_finite_and_out_of_range(words, act):
    opt, tp = act.option_strings[0], act.type.tp
    bad = ["nan", "inf", "-inf", "NaN", "1e400", "x"] + ([] if tp is float else ["1.5"])
    if act.type.lo is not None: bad.append(str(act.type.lo - (1 if tp is int else 0.5)))
    if act.type.hi is not None: bad.append(str(act.type.hi + 1))
    base = list(words) + MINIMAL.get(words, [])
    for text in bad:
        msg = parse_error(base + [f"{opt}={text}"])
        assert f"argument {opt}: expected " in msg and f"got {text!r}" in msg, (opt, text, msg)
    for good in [act.type.lo, act.type.hi]:
        if good is not None: assert getattr(_parser().parse_args(base + [f"{opt}={good}"]), act.dest) == good

def test_issue_cases_exit_2_naming_option_and_range():
    cases = [(["graph", "check", "g.json", "--max-weight", "nan"], "argument --max-weight: expected a finite number >= 0.0, got 'nan'"),
             (["motifs", "g.json", "--n-random", "0"], "argument --n-random: expected an integer >= 2, got '0'"),
             (["motifs", "g.json", "--swaps-per-edge", "-1"], "argument --swaps-per-edge: expected a finite number >= 1.0, got '-1'"),
             (["motifs", "g.json", "--size", "5"], "argument --size: expected one of 3, 4, got '5'"),
             (["run", "--layers", "1-0"], "argument --layers: '1-0': the range 1-0 is empty"),
             (["run", "--layers", "0,3-2,5"], "argument --layers: '0,3-2,5': the range 3-2 is empty"),
             (["run", "--layers", ""], "argument --layers: '': expected layer numbers and ranges"),
             (["run", "--wait", "-1"], "argument --wait: expected a finite number >= 0.0, got '-1'"),
             (["serve", "dir", "--port", "70000"], "argument --port: expected an integer between 0 and 65535, got '70000'")]
    for args, want in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e: main(args)
        assert e.value.code == 2 and want in err.getvalue(), (args, err.getvalue())

def test_wait_option():
    for cmd in (["prepare"], ["run"], ["train", "--nproc", "1"]): assert _parser().parse_args(cmd).wait == 0.0
    assert _parser().parse_args(["run", "--wait", "2.5"]).wait == 2.5
    assert _parser().parse_args(["run", "--layers", "0,2-3"]).layers == (0, 2, 3)
