import os, shutil, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent/"shared"

@pytest.fixture(scope="session")
def root(): return ROOT

def r1_interp_cmd():
    "The console script, or the module entry point when the script is not on PATH."
    exe = shutil.which("r1-interp")
    return [exe] if exe else [sys.executable, "-c", "import sys; from r1_interp.pipeline.cli import main; sys.exit(main())"]

GRAPHS = SHARED/"data"/"graphs"
HAIKU = GRAPHS/"haiku"/"capital-state-dallas.json"
DEGENERATE = GRAPHS/"degenerate"
needs_shared_graphs = pytest.mark.skipif(not HAIKU.exists(), reason=f"shared graphs not found at {GRAPHS} (../shared is absent)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--enable-logging=stderr", "--v=0", "--dump-dom"]

def chromium_dom(url:str, profile, budget_ms:int=5000):
    "(DOM after the page settled, console lines) of `url` in headless Chromium with a fresh profile folder `profile`."
    import subprocess
    r = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--virtual-time-budget={budget_ms}", f"--user-data-dir={profile}", url], capture_output=True, text=True, timeout=120)
    return r.stdout, [l for l in r.stderr.splitlines() if ":CONSOLE" in l]

def run_until(args, env, marker:str, ready, timeout:float=900) -> str:
    """Start the console script in its own process group; once `marker` has appeared in its output and `ready()` is
    true (work of that phase is under way on disk), SIGKILL the whole group. Returns what it printed."""
    import signal, subprocess, time
    p = subprocess.Popen(r1_interp_cmd() + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         start_new_session=True)
    t0, lines = time.time(), []
    for line in p.stdout:
        lines.append(line)
        if marker in line:
            while not ready():
                assert p.poll() is None, "finished before the kill:\n" + "".join(lines[-20:]) + p.stdout.read()[-2000:]
                assert time.time() - t0 < timeout; time.sleep(0.02)
            os.killpg(p.pid, signal.SIGKILL); p.wait()
            return "".join(lines)
        assert time.time() - t0 < timeout
    p.wait()
    raise AssertionError(f"finished before '{marker}' appeared:\n" + "".join(lines[-20:]))

def _lines(p) -> int:
    try: return len(p.read_text().splitlines())
    except OSError: return 0

@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny preset's main job (`r1-interp run`, two workers, no API key), SIGKILLed with its whole process group in the
    middle of three phases (train after its first checkpoint, label inside layer 0, graphs after 8 of 24) and rerun
    each time until it finishes. One run serves two modules, since a run costs minutes: test_reliability checks that
    nothing was lost or done twice, test_pipeline_tiny that the finished outputs are right. What was seen on disk right
    after each kill is recorded in `seen` for the reliability test; `done` is the finishing run."""
    import json, subprocess
    out = tmp_path_factory.mktemp("tiny")
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    args = ["run", "--preset", "tiny", "--outputs", str(out), "--workers", "2"]
    ckpt = out/"train"/"checkpoints"/"layers_0-1"
    def status(): return subprocess.run(r1_interp_cmd() + ["status", "--preset", "tiny", "--outputs", str(out)],
                                        capture_output=True, text=True, env=env, timeout=120).stdout
    def record(path): return json.loads(path.read_text())["status"]
    seen = {}
    run_until(args, env, "== train:", lambda: (ckpt/"rank_0_state.pt").exists())     # after its first checkpoint
    seen["train"] = dict(record=record(out/"train"/"layers_0-1.run.json"), eval_written=(ckpt/"eval.json").exists(),
                         status=status())
    run_until(args, env, "== label:", lambda: _lines(out/"features"/"labels"/"layer_0"/"labels.jsonl") >= 3)
    seen["label"] = dict(record=record(out/"features"/"layer_0.run.json"))
    run_until(args, env, "== graphs:", lambda: len(list((out/"graphs"/"records").rglob("*.json"))) >= 8)
    seen["graphs"] = dict(record=record(out/"graphs"/"graphs.run.json"))
    done = subprocess.run(r1_interp_cmd() + args, capture_output=True, text=True, timeout=1200, env=env)
    return dict(outputs=out, env=env, args=args, seen=seen, done=done)
