"""circuit-tracer's own public loaders on our exported transcoder set: each one either refuses the folder with a message
naming our loader, or computes sparsify's exact ReLU-then-TopK. Ours computes it exactly from a copied folder."""
import shutil, sys
import pytest, torch, yaml
from r1_interp.models.registry import load_model, resolve_model_path
from r1_interp.transcoders.io import export_circuit_tracer, load_circuit_tracer_set, random_transcoders, TranscoderError

HOW = "Load it with r1_interp.transcoders.io.load_circuit_tracer_set(folder)"

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    "Seeded random coders for tiny-qwen2, exported, copied elsewhere and the original deleted; MLP inputs of a prompt."
    tmp = tmp_path_factory.mktemp("export")
    model, tok = load_model("tiny-qwen2")
    coders = random_transcoders(model.config.hidden_size, model.config.num_hidden_layers, k=8, seed=3)
    ids = tok("Problem: find all integers n such that n^2 + 1 divides n^3 + 3.", return_tensors="pt").input_ids
    acts, hooks = {}, [model.model.layers[l].mlp.register_forward_hook(lambda m, i, o, l=l: acts.__setitem__(l, i[0][0]))
                       for l in coders]
    with torch.no_grad(): model(ids)
    for h in hooks: h.remove()
    export_circuit_tracer(coders, tmp/"orig", "tiny-qwen2")
    shutil.copytree(tmp/"orig", tmp/"copy"); shutil.rmtree(tmp/"orig")
    return tmp, coders, acts

def sparsify_out(coders, acts, l):
    with torch.no_grad(): return coders[l](acts[l]).sae_out

def test_config_is_relative_and_uploadable(setup):
    tmp, coders, _ = setup
    cfg = yaml.safe_load((tmp/"copy"/"config.yaml").read_text())
    assert cfg["transcoders"] == ["layer_0.safetensors", "layer_1.safetensors"]
    assert cfg["scan"] == "r1-interp-tiny-qwen2" and cfg["activation"] == "relu_topk" and cfg["k"] == 8
    assert HOW in cfg["model_kind"] and "k=8" in cfg["model_kind"]

def test_our_loader_is_exact_from_a_copy(setup):
    tmp, coders, acts = setup
    ts = load_circuit_tracer_set(tmp/"copy")
    for l in coders:
        with torch.no_grad():
            torch.testing.assert_close(ts[l](acts[l]), sparsify_out(coders, acts, l), atol=1e-5, rtol=0)
            active = (ts[l].encode(acts[l]) > 0).sum(-1)
        assert int(active.max()) <= 8

def test_old_absolute_path_export_still_loads(setup, tmp_path):
    tmp, coders, acts = setup
    old = tmp_path/"old"; shutil.copytree(tmp/"copy", old)
    cfg = yaml.safe_load((old/"config.yaml").read_text())   # the format before relative paths: model_kind transcoder_set
    cfg.update(model_kind="transcoder_set", transcoders=[str(tmp/"gone"/p) for p in cfg["transcoders"]])
    (old/"config.yaml").write_text(yaml.safe_dump(cfg))
    ts = load_circuit_tracer_set(old)                         # recorded paths are gone: the folder's own files are used
    with torch.no_grad(): torch.testing.assert_close(ts[1](acts[1]), sparsify_out(coders, acts, 1), atol=1e-5, rtol=0)
    cfg["transcoders"] = [str(old/p) for p in ("layer_0.safetensors", "layer_1.safetensors")]
    (old/"config.yaml").write_text(yaml.safe_dump(cfg))
    load_circuit_tracer_set(old)
    (old/"layer_1.safetensors").unlink()
    with pytest.raises(TranscoderError, match="layer_1.safetensors \\(layer 1\\) does not exist"): load_circuit_tracer_set(old)

def test_circuit_tracer_loaders_refuse_with_our_message(setup, monkeypatch, tmp_path):
    from circuit_tracer import ReplacementModel
    from circuit_tracer.utils.hf_utils import load_transcoders
    from circuit_tracer.__main__ import main as cli_main   # the `circuit-tracer` console script's entry point
    tmp, coders, acts = setup
    folder = tmp/"copy"
    cfg = yaml.safe_load((folder/"config.yaml").read_text())
    with pytest.raises(ValueError, match="Unknown model kind: r1-interp transcoder set") as e: load_transcoders(cfg)
    assert HOW in str(e.value)
    with pytest.raises(ValueError) as e: ReplacementModel.from_pretrained(resolve_model_path("tiny-qwen2"), str(folder))
    assert HOW in str(e.value)
    monkeypatch.setattr(sys, "argv", ["circuit-tracer", "attribute", "-m", str(resolve_model_path("tiny-qwen2")),
                                      "-t", str(folder), "-p", "2 + 2 =", "-o", str(tmp_path/"g.pt")])
    with pytest.raises(ValueError) as e: cli_main()
    assert HOW in str(e.value) and not (tmp_path/"g.pt").exists()
    # what the refusal prevents: the same files under model_kind transcoder_set run plain ReLU, far from sparsify
    ts = load_transcoders(dict(cfg, model_kind="transcoder_set", transcoders=[str(folder/p) for p in cfg["transcoders"]]))
    with torch.no_grad():
        active = (ts[0].encode(acts[0]) > 0).sum(-1)
        gap = (ts[0](acts[0]) - sparsify_out(coders, acts, 0)).abs().max()
    assert active.float().median() > 8 and gap > 1e-2

# --- Neuronpedia's graph schema: our copy, the shipped copy, and real graphs against it ---
import json
from pathlib import Path
from conftest import HAIKU, needs_shared_graphs
from r1_interp.graphs.check import neuronpedia_problems, check_graph

SCHEMA = Path(__file__).parent/"data"/"neuronpedia"/"graph-schema.json"

def test_shipped_schema_is_the_tests_copy():
    import r1_interp
    assert (Path(r1_interp.__file__).parent/"neuronpedia_graph_schema.json").read_bytes() == SCHEMA.read_bytes()

@needs_shared_graphs
def test_haiku_passes_and_our_old_format_fails():
    schema = json.loads(SCHEMA.read_text())
    d = json.loads(HAIKU.read_text())
    assert neuronpedia_problems(d, HAIKU.stat().st_size, schema=schema) == [] and check_graph(HAIKU).neuronpedia == []
    d["metadata"].update(scan="r1-interp/tiny-qwen2", info=dict(generator="r1-interp"))
    assert neuronpedia_problems(d, schema=schema) == [
        "/metadata/info/generator: 'r1-interp' is not of type 'object'",
        "/metadata/scan: 'r1-interp/tiny-qwen2' has characters outside [a-zA-Z0-9_-] (the upload route refuses it)"]

def test_a_demo_runs_graphs_pass_neuronpedias_schema(root):
    """Every graph a demo run wrote (outputs/demo, or the outputs folder in $R1_INTERP_DEMO_OUTPUTS) passes Neuronpedia's
    schema. CI runs the tiny preset instead (tests/test_pipeline_tiny.py validates every graph it writes); after the
    README's main command this checks the demo's own graphs."""
    import json, os
    from pathlib import Path
    from r1_interp.graphs.check import neuronpedia_problems
    from r1_interp.graphs.viewer import is_graph
    out = Path(os.environ.get("R1_INTERP_DEMO_OUTPUTS", root/"outputs"/"demo"))
    if not (out/"graphs"/"json").is_dir(): pytest.skip(f"no demo graphs at {out}/graphs/json (run `r1-interp run --preset demo`)")
    files = [p for p in (out/"graphs").rglob("*.json") if "records" not in p.parts and p.name != "graph-metadata.json"]
    graphs = {p: d for p in files if is_graph(d := json.loads(p.read_text()))}
    problems = {str(p.relative_to(out)): neuronpedia_problems(d, p.stat().st_size) for p, d in graphs.items()}
    assert len(graphs) >= 7 and not any(problems.values())     # a graph per category at least, {k: v for k, v in problems.items() if v}
