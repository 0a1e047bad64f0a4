"""Bad params files: one clear error naming the file, the key and what was expected; and the CLI stops before any work."""
import dataclasses, math, subprocess, types, typing
from pathlib import Path
import pytest, yaml
from r1_interp.core.config import ConfigError, MotifConfig, TranscoderConfig, load_config, check_setting
from r1_interp.pipeline.phases import PHASES, load_params
from conftest import r1_interp_cmd

CASES = [  # (file name, YAML, key named, words of the expectation)
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\nlearning_rate: 0.1\n", "learning_rate", "expected a TrainConfig key"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\nbatch_size: eight\n", "batch_size", "expected an integer >= 1, got 'eight'"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\nbatch_size: 0\n", "batch_size", "expected an integer >= 1, got 0"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\ntranscoder: {expansion_factor: 2, k: 5000}\n", "transcoder.k",
     "dictionary size = expansion_factor 2 x hidden 576"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\ntranscoder: {k: many}\n", "transcoder.k", "an integer >= 1, got 'many'"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0]\ncorpus: demo\n", "corpus", "expected a TrainConfig key"),
    ("collect.yaml", "model: tiny-qwen2\nn_top: 0\n", "n_top", "an integer between 1 and 1000"),
    ("train.yaml", "model: smollm2-135m\nlayers: [0, 30]\n", "layers", "layer indices from 0 to 29"),
    ("train.yaml", "model: r1-distill-qwen-1.5b\nlayers: [28]\n", "layers", "layer indices from 0 to 27"),
    ("sweep.yaml", "model: r1-distill-qwen-1.5b\npilot_layers: [2, 14, 40]\n", "pilot_layers", "layer indices from 0 to 27"),
    ("sweep.yaml", "model: smollm2-135m\npilot_layers: [1]\nexpansion_factors: [1]\nks: [8, 1000]\n", "ks", "dictionary size"),
    ("prepare.yaml", "model: tiny-qwen2\neval_fraction: 0.9\n", "eval_fraction", "a finite number between 0.0 and 0.5"),
    ("prepare.yaml", "model: tiny-qwen2\nctx_len: [64]\n", "ctx_len", "an integer between 8 and 32768"),
    ("motifs.yaml", "null_model: erdos-renyi\n", "null_model", "one of 'configuration', 'layered'"),
    ("motifs.yaml", "size: 5\n", "size", "one of 3, 4"),
    ("graphs.yaml", "categories: [arithmetic, poetry]\n", "categories", "one of 'arithmetic'"),
    ("label.yaml", "batch: maybe\n", "batch", "true or false"),
    ("prepare.yaml", "- model\n- tiny-qwen2\n", "(top level)", "a mapping of PrepareConfig keys"),
    ("prepare.yaml", "model: tiny-qwen2\nctx_len: 64\n  seed: 1\n", "(file)", "valid YAML (line"),
    ("training.yaml", "model: tiny-qwen2\n", "(file name)", "a params file named after a phase"),
    ("train.yaml", "model: tiny-qwen2\nlayers: [0]\nlayers_per_job: max\n", "layers_per_job",
     "expected an integer >= 1, 'auto' or null, got 'max'"),
    ("train.yaml", "model: tiny-qwen2\nlayers: [0]\nlayers_per_job: 0\n", "layers_per_job",
     "expected an integer >= 1, 'auto' or null, got 0"),
]

@pytest.mark.parametrize("fname,text,key,expected", CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_bad_params_file(tmp_path, fname, text, key, expected):
    path = tmp_path/fname
    path.write_text(text)
    with pytest.raises(ConfigError) as e: _load_file(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: key '{key}': "), msg
    assert expected in msg, msg
    assert e.value.key == key and e.value.source == str(path)

def test_missing_file_named(tmp_path):
    with pytest.raises(ConfigError, match="prepare.yaml"): load_params(tmp_path/"prepare.yaml")

def _project(tmp_path, root, prepare_yaml):
    (tmp_path/"nbs").symlink_to(root/"nbs")
    (tmp_path/"params"/"bad").mkdir(parents=True)
    (tmp_path/"params"/"bad"/"prepare.yaml").write_text(prepare_yaml)
    return tmp_path

def test_cli_stops_on_bad_params_before_work(tmp_path, root):
    proj = _project(tmp_path, root, "model: tiny-qwen2\nctx_len: 4\n")
    r = subprocess.run(r1_interp_cmd() + ["run", "--root", str(proj), "--preset", "bad"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"error: {proj}/params/bad/prepare.yaml: key 'ctx_len': expected an integer between 8 and 32768, got 4"
    assert not (proj/"outputs").exists(), "nothing may be written before the params are valid"

def test_cli_unknown_preset(tmp_path, root):
    proj = _project(tmp_path, root, "model: tiny-qwen2\n")
    r = subprocess.run(r1_interp_cmd() + ["run", "--root", str(proj), "--preset", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "preset 'nope'" in r.stderr and "presets here: bad" in r.stderr


# ---- every field of every phase config, systematically: non-finite numbers and empty lists -------------------------
# the settings of every params file the registry knows, and the settings that are not a phase's own file: the motif
# command's, and a transcoder's shape (nested in the train phase's; nesting itself is tested in nbs/00_config.ipynb)
CONFIGS = {**{p.params: p.settings for p in PHASES.values()}, "motifs": MotifConfig, "transcoder": TranscoderConfig}
BASE = dict(prepare=dict(model="tiny-qwen2"), sweep=dict(model="tiny-qwen2", pilot_layers=[0], expansion_factors=[2], ks=[4]),
            train=dict(model="tiny-qwen2", layers=[0], transcoder=dict(expansion_factor=2, k=4)),
            collect=dict(model="tiny-qwen2", layers=[0]), label=dict(model="tiny-qwen2"), graphs=dict(model="tiny-qwen2"),
            motifs={}, transcoder=dict(expansion_factor=2, k=4), compare=dict(groups=["a=x", "b=y"]))

def _load_file(path):
    "A params file as the settings its name says: a phase's file through the registry, the others by their class."
    stem = Path(path).stem
    return load_config(path, CONFIGS[stem]) if stem in ("motifs", "transcoder") else load_params(path)

def _scalars(tp) -> set:
    "The scalar types an annotation admits, through None unions and tuples."
    if typing.get_origin(tp) in (typing.Union, types.UnionType, tuple): return set().union(*(_scalars(a) for a in typing.get_args(tp) if a is not Ellipsis))
    return {tp}

def _is_list(tp) -> bool:
    return typing.get_origin(tp) is tuple or any(typing.get_origin(a) is tuple for a in typing.get_args(tp))

FIELDS = [(phase, f, typing.get_type_hints(cls)[f.name]) for phase, cls in CONFIGS.items() for f in dataclasses.fields(cls)]
NUMERIC = [(phase, f, tp) for phase, f, tp in FIELDS if _scalars(tp) & {int, float}]
LISTS = [(phase, f, tp) for phase, f, tp in FIELDS if _is_list(tp)]

def test_the_field_lists_cover_the_configs():
    assert set(CONFIGS) == set(BASE)
    assert len({(p, f.name) for p, f, tp in NUMERIC if float in _scalars(tp)}) >= 15 and len(LISTS) >= 10
    for phase, cls in CONFIGS.items(): cls.from_dict(BASE[phase])      # the base of every case is valid

def _load(tmp_path, phase, key, value):
    path = tmp_path/f"{phase}.yaml"
    path.write_text(yaml.safe_dump(dict(BASE[phase], **{key: value})))
    return path

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("phase,f,tp", NUMERIC, ids=[f"{p}:{f.name}" for p, f, _ in NUMERIC])
def test_non_finite_numbers_are_rejected(tmp_path, phase, f, tp, value):
    "`.nan`, `.inf` and `-.inf` in every numeric key (and inside every list of numbers): an error naming the file, the key and the range."
    for v in [[value], value] if _is_list(tp) else [value]:
        path = _load(tmp_path, phase, f.name, v)
        with pytest.raises(ConfigError) as e: _load_file(path)
        msg = str(e.value)
        assert msg.startswith(f"{path}: key '{f.name}': expected "), msg
        named = f.metadata.get("choices") and str not in _scalars(tp)     # `int | str`: a number, or one of the names
        assert ("one of" if named else "finite number" if float in _scalars(tp) else "integer") in msg, msg
        for bound in ("lo", "hi"):
            if f.metadata.get(bound) is not None: assert str(f.metadata[bound]) in msg, msg
        with pytest.raises(ConfigError, match=f"key '{f.name}'"): CONFIGS[phase].from_dict(BASE[phase]).replace(**{f.name: v})

@pytest.mark.parametrize("phase,f,tp", LISTS, ids=[f"{p}:{f.name}" for p, f, _ in LISTS])
def test_empty_lists_are_rejected_unless_documented(tmp_path, phase, f, tp):
    "`[]` in every list key: an error naming the file and key, unless the field says what an empty list means."
    path = _load(tmp_path, phase, f.name, [])
    if f.metadata.get("empty"):
        assert len(f.metadata["empty"]) > 5
        assert getattr(_load_file(path), f.name) == ()
    else:
        with pytest.raises(ConfigError) as e: _load_file(path)
        assert str(e.value).startswith(f"{path}: key '{f.name}': expected a non-empty list"), str(e.value)

def test_check_setting_is_the_field_check():
    from r1_interp.core.config import MotifConfig
    from r1_interp.models.settings import GraphConfig, TrainConfig
    assert check_setting(MotifConfig, "n_random", 5) == 5 and check_setting(GraphConfig, "max_weight", 3) == 3.0
    with pytest.raises(ConfigError, match="key 'n_random': expected an integer >= 2, got 0"): check_setting(MotifConfig, "n_random", 0)
    with pytest.raises(ConfigError, match="key 'max_weight': expected a finite number >= 0.0, got nan"): check_setting(GraphConfig, "max_weight", math.nan)
    with pytest.raises(ConfigError, match="key 'layers': expected a non-empty list of integers, got"): check_setting(TrainConfig, "layers", [])
    with pytest.raises(KeyError, match="MotifConfig has no key 'n_randm'"): check_setting(MotifConfig, "n_randm", 5)
