"""Attribution graphs: the two circuit-tracer backends agree on a graph, and the health check tells the shared Claude
Haiku graph (a real circuit) from the earlier attempt's degenerate R1 graphs, through the console script."""
import json, subprocess
from pathlib import Path
import pytest, torch
from conftest import r1_interp_cmd, needs_shared_graphs, HAIKU, DEGENERATE

def test_backends_agree_on_a_graph(tmp_path):
    from r1_interp.models.registry import resolve_model_path
    from r1_interp.transcoders.io import export_circuit_tracer, random_transcoders
    from r1_interp.graphs.replacement import load_replacement_model
    from r1_interp.graphs.attribution import prompt_ids, attribute_prompt
    ct = export_circuit_tracer(random_transcoders(64, 2, seed=1), tmp_path/"ct", resolve_model_path("tiny-qwen2"))
    graphs = {}
    for backend in ("transformerlens", "nnsight"):
        rm = load_replacement_model("tiny-qwen2", ct, backend=backend)
        graphs[backend], _ = attribute_prompt(rm, prompt_ids("Fact: the capital of the state containing Dallas is", rm.tokenizer), max_n_logits=5, batch_size=64)
    tl, nn = graphs["transformerlens"], graphs["nnsight"]
    assert torch.equal(tl.active_features, nn.active_features) and torch.equal(tl.selected_features, nn.selected_features)
    assert [t.vocab_idx for t in tl.logit_targets] == [t.vocab_idx for t in nn.logit_targets]
    scale = tl.adjacency_matrix.abs().max()
    assert float((tl.adjacency_matrix - nn.adjacency_matrix).abs().max() / scale) < 1e-4

@needs_shared_graphs
def test_graph_check_cli_on_shared_graphs():
    ok = subprocess.run(r1_interp_cmd() + ["graph", "check", str(HAIKU)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith("ok "), ok.stdout + ok.stderr
    bad = subprocess.run(r1_interp_cmd() + ["graph", "check", str(DEGENERATE)], capture_output=True, text=True, timeout=300)
    lines = [l for l in bad.stdout.splitlines() if l.startswith(("ok", "DEGENERATE", "INVALID"))]
    assert bad.returncode == 1 and len(lines) == 2 and all(l.startswith("DEGENERATE") and "no transcoder feature nodes" in l for l in lines), bad.stdout

SCRIPT = r'''
import sys
from pathlib import Path
from r1_interp.models.registry import resolve_model_path
from r1_interp.transcoders.io import export_circuit_tracer, random_transcoders
from r1_interp.graphs.replacement import load_replacement_model
from r1_interp.graphs.attribution import generate_graphs
from r1_interp.models.prompts import BENCHMARK_PROMPTS
out = Path(sys.argv[1])
ct = out/"ct"
if not (ct/"config.yaml").exists(): export_circuit_tracer(random_transcoders(64, 2), ct, resolve_model_path("tiny-qwen2"))
rm = load_replacement_model("tiny-qwen2", ct)
generate_graphs(rm, rm.tokenizer, BENCHMARK_PROMPTS[:8], out/"graphs", max_n_logits=5, batch_size=64, node_threshold=0.99,
                echo=lambda s: print(s, flush=True))
print("FINISHED", flush=True)
'''

def test_graph_generation_resumes_after_kill(tmp_path):
    "SIGKILL after a few graphs; the rerun redoes none of them, makes the rest, and every graph exists exactly once and passes."
    import signal, sys, time
    script = tmp_path/"gen.py"; script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done = []
    for line in p.stdout:
        if line.startswith("   "): done.append(line.split(":")[0].strip())
        if len(done) == 3: p.send_signal(signal.SIGKILL); break
    p.wait(timeout=60)
    records = lambda: sorted(f.stem for f in (tmp_path/"graphs"/"records").rglob("*.json"))
    assert records() == sorted(done)
    for f in (tmp_path/"graphs").rglob("*.json"): json.loads(f.read_text())   # nothing half-written under a final name
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert "FINISHED" in r.stdout, r.stdout + r.stderr
    again = [l.strip() for l in r.stdout.splitlines() if l.startswith("   ")]
    assert sorted(l.split(":")[0] for l in again if "done before" in l) == sorted(done)
    assert len(again) == 8 and len(records()) == 8
    from r1_interp.graphs.check import check_graphs
    checks = check_graphs(tmp_path/"graphs"/"json")
    assert len(checks) == 8 and all(c.ok for c in checks), [c.line() for c in checks]
