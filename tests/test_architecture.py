"""The package's architecture: floors that import only downwards, no import circles, r1_interp imports at the top of
a module unless they load a heavy library, a motif command that never loads torch, and one phase registry that the
pipeline notebooks and the preset folders agree with (see nbs/index.ipynb, "Layout")."""
import ast, json, subprocess, sys
from pathlib import Path
import networkx as nx
import pytest
from conftest import HAIKU, needs_shared_graphs

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT/"r1_interp"
LIB = "r1_interp"

# Which floors each floor may import (its own included). The package root (`r1_interp`, the version) is below them all.
CHAIN = ("core", "models", "transcoders", "features", "graphs")
FLOORS = {f: set(CHAIN[:i + 1]) for i, f in enumerate(CHAIN)}
FLOORS["motifs"] = {"core", "motifs"}
FLOORS["testing"] = set(CHAIN) | {"motifs", "testing"}
FLOORS["pipeline"] = set(CHAIN) | {"motifs", "testing", "pipeline"}
# Third-party libraries that load torch (or are torch) at import: a module importing one at its top is heavy.
HEAVY_LIBS = {"torch", "circuit_tracer", "nnsight", "transformers", "sparsify", "transformer_lens", "safetensors.torch"}

def module_name(path:Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

def library_files() -> dict[str, Path]:
    "Every module of the package by dotted name (the generated `_modidx.py` aside)."
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))
            if p.name != "_modidx.py" and "__pycache__" not in p.parts}

MODULES = library_files()

def _package(name:str) -> str:
    "The package a module's relative imports start from."
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]

def _resolve(target:str) -> str:
    "The module an imported dotted name denotes: the longest prefix that is a module of the package."
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in MODULES: return ".".join(parts[:i])
    return target

class Import:
    "One import statement's target: `module` (resolved), where it is (`line`, inside a function or not) and its source."
    def __init__(self, module, line, in_function, text, library):
        self.module, self.line, self.in_function, self.text, self.library = module, line, in_function, text, library
    def __repr__(self): return f"line {self.line}: {self.text}"

def _imports_of(node:ast.AST, name:str, in_function:bool, src:list[str]):
    "Every import under `node`, at any depth, with whether it runs only when a function is called."
    for child in ast.iter_child_nodes(node):
        inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, ast.Import):
            for a in child.names: yield _import(a.name, child, inside, src)
        elif isinstance(child, ast.ImportFrom):
            if child.level:
                base = _package(name).split(".")
                base = base[:len(base) - (child.level - 1)]
                if len(base) < 1: raise AssertionError(f"{name}: line {child.lineno} imports above the package")
                base = ".".join(base + ([child.module] if child.module else []))
            else: base = child.module
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
            ours = base == LIB or base.startswith(LIB + ".")
            targets = [_resolve(f"{base}.{a.name}") if ours else base for a in child.names]
            for t in dict.fromkeys(targets): yield _import(t, child, inside, src)
        yield from _imports_of(child, name, inside, src)

def _import(target, stmt, inside, src):
    lib = target == LIB or target.startswith(LIB + ".")
    return Import(_resolve(target) if lib else target, stmt.lineno, inside, src[stmt.lineno - 1].strip(), lib)

def module_imports() -> dict[str, list[Import]]:
    out = {}
    for name, path in MODULES.items():
        text = path.read_text()
        out[name] = list(_imports_of(ast.parse(text, filename=str(path)), name, False, text.splitlines()))
    return out

IMPORTS = module_imports()

def floor(module:str) -> str|None:
    "The floor (subpackage) of a module; None for the package root."
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None

def test_every_module_has_a_floor():
    # a module directly under r1_interp/ (other than __init__) has no floor and so no rule: the table must name it
    outside = {floor(m) for m in MODULES} - {None} - set(FLOORS)
    assert not outside, f"subpackages outside the floor table: {outside}"
    assert [m for m in MODULES if floor(m) is None] == [LIB], "modules directly under r1_interp/ belong in a floor"

def test_floors_import_only_downwards():
    bad = []
    for name, imports in IMPORTS.items():
        mine = floor(name)
        for imp in imports:
            if not imp.library or floor(imp.module) is None:
                if imp.library and mine is None:
                    bad.append(f"{name} ({imp!r}): the package root imports nothing of its own")
                continue
            if imp.module not in MODULES:
                bad.append(f"{name} ({imp!r}): {imp.module} is not a module of the package"); continue
            allowed = FLOORS[mine] if mine else set()
            if floor(imp.module) not in allowed:
                bad.append(f"{name} ({imp!r}) imports floor '{floor(imp.module)}': floor '{mine}' may import only "
                           f"{', '.join(sorted(allowed))}")
    assert not bad, "imports against the floors:\n" + "\n".join(bad)

def import_graph(top_only:bool=False) -> nx.DiGraph:
    "Module -> module it imports (all imports, or only those that run at import)."
    g = nx.DiGraph()
    g.add_nodes_from(MODULES)
    for name, imports in IMPORTS.items():
        for imp in imports:
            if imp.library and imp.module in MODULES and imp.module != name and not (top_only and imp.in_function):
                g.add_edge(name, imp.module)
    return g

def test_no_import_circles():
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert not cycles, ("import circles (imports inside functions included):\n"
                        + "\n".join(" -> ".join(c + c[:1]) for c in cycles))

def heavy_modules() -> set[str]:
    """Modules that load a heavy library when imported: one among their own top-level imports, or through the
    top-level imports of a module of the package they import (its packages' __init__ included)."""
    g = import_graph(top_only=True)
    for name in MODULES:   # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = name.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[:i]) in MODULES: g.add_edge(name, ".".join(parts[:i]))
    direct = {name for name, imports in IMPORTS.items()
              for imp in imports if not imp.library and not imp.in_function
              and any(imp.module == h or imp.module.startswith(h + ".") for h in HEAVY_LIBS)}
    return {m for m in MODULES if direct & (nx.descendants(g, m) | {m})}

def test_heavy_modules_computed():
    "The heavy set comes from the graph: the training chapter uses torch at import, the motif floor never."
    heavy = heavy_modules()
    assert "r1_interp.transcoders.train" in heavy
    assert not {m for m in heavy if floor(m) in ("core", "motifs")}, f"light floors load a heavy library: {heavy}"

def function_imports():
    "(module, import) for every r1_interp import that runs only when a function is called."
    return [(name, imp) for name, imports in IMPORTS.items() for imp in imports if imp.library and imp.in_function]

def test_library_imports_at_the_top():
    """An r1_interp import inside a function only where the imported module loads a heavy library at import
    (torch, circuit_tracer, nnsight, transformers, sparsify, directly or through its own top-level imports)."""
    heavy = heavy_modules()
    bad = [f"{name} ({imp!r}): {imp.module} loads no heavy library at import: import it at the top"
           for name, imp in function_imports() if imp.module not in heavy]
    assert not bad, "imports inside functions:\n" + "\n".join(bad)

def _said(lines:list[str], i:int) -> bool:
    "Line `i` (0-based) has a comment, or a comment line heads the block of import lines it belongs to."
    if "#" in lines[i]: return True
    while i > 0 and lines[i - 1].lstrip().startswith(("import ", "from ")) and "#" not in lines[i - 1]: i -= 1
    return i > 0 and ("#" in lines[i - 1])

def test_heavy_imports_in_functions_say_why():
    """A function-level import of a heavy module has a short comment on its line, or heading its block of imports
    (`# torch: ...`)."""
    heavy, bad = heavy_modules(), []
    for name, imp in function_imports():
        lines = MODULES[name].read_text().splitlines()
        if imp.module in heavy and not _said(lines, imp.line - 1):
            bad.append(f"{name} ({imp!r}): no comment saying why {imp.module} is imported here")
    assert not bad, "heavy imports inside functions without a comment:\n" + "\n".join(bad)

TORCH_FREE = """
import sys, contextlib, io, json
HEAVY = ('torch', 'circuit_tracer', 'nnsight', 'transformers', 'sparsify')
torch = lambda: sorted(m for m in sys.modules if m.split('.')[0] in HEAVY)
import r1_interp.pipeline.cli, r1_interp.pipeline.status, r1_interp.pipeline.report
assert not torch(), f'importing the cli, status and report loads {torch()[:5]}'
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = r1_interp.pipeline.cli.main(['motifs', sys.argv[1], '--null', 'configuration', '--n-random', '20',
                                      '--seed', '1', '--json'])
rec = json.loads(out.getvalue())
assert rc in (0, None) and rec['counts'][rec['labels'].index('030T')] > 0, (rc, out.getvalue()[-2000:])
assert not torch(), f'`r1-interp motifs` loaded {torch()[:5]}'
print('ok')
"""

@needs_shared_graphs
def test_motif_command_does_not_load_torch():
    r = subprocess.run([sys.executable, "-c", TORCH_FREE, str(HAIKU)], capture_output=True, text=True, timeout=300,
                       cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-3000:] + r.stderr[-3000:]

def test_cli_status_report_are_light():
    "The same, from the graph: the commands that only read outputs import no heavy module at their top."
    heavy = heavy_modules()
    assert not {"r1_interp.pipeline.cli", "r1_interp.pipeline.status", "r1_interp.pipeline.report",
                "r1_interp.core.graph_json"} & heavy, heavy

# ---- the phase registry against the pipeline notebooks and the presets

EXTRA = dict(sweep="run", train="group", label="layer")     # the parameter a phase's jobs differ by (SESSION.md)
COMMON_PARAMS = {"preset", "settings", "outputs", "force"}

@pytest.fixture(scope="module")
def registry():
    from r1_interp.pipeline import phases
    if not isinstance(phases.PHASES, dict):
        pytest.fail(f"r1_interp.pipeline.phases.PHASES is a {type(phases.PHASES).__name__}; "
                    "the registry is a dict name -> Phase")
    return phases

def parameters_cell(nb:Path) -> str:
    cells = [c for c in json.loads(nb.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{nb}: {len(cells)} cells tagged 'parameters', expected one"
    src = cells[0]["source"]
    return "".join(src) if isinstance(src, list) else src

def assigned_names(src:str, where) -> list[str]:
    names = []
    for stmt in ast.parse(src).body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]):
                assert isinstance(t, ast.Name), f"{where}: the parameters cell assigns {ast.unparse(t)}: expected names"
                names.append(t.id)
        else: raise AssertionError(f"{where}: the parameters cell holds `{ast.unparse(stmt)}`: only assignments")
    return names

def test_registry_order_and_names(registry):
    assert list(registry.PHASES) == ["prepare", "sweep", "select", "train", "summary", "collect", "label", "graphs",
                                     "compare"]
    for name, p in registry.PHASES.items():
        assert p.name == name, f"PHASES['{name}'].name is '{p.name}'"
        assert p.notebook == name, f"phase '{name}': notebook '{p.notebook}', expected the phase's name"
        assert p.key == EXTRA.get(name), f"phase '{name}': its jobs differ by {p.key!r}, expected {EXTRA.get(name)!r}"

def code_cells(nb:Path) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]

def test_every_phase_has_its_notebook(registry):
    bad = []
    for name, p in registry.PHASES.items():
        nb = ROOT/"nbs"/"pipelines"/f"{p.notebook}.ipynb"
        if not nb.exists(): bad.append(f"phase '{name}': no notebook {nb}"); continue
        names = assigned_names(parameters_cell(nb), nb)
        expected = COMMON_PARAMS | ({p.key} if p.key else set())
        if sorted(names) != sorted(expected):
            bad.append(f"{nb}: the parameters cell defines {names}, expected exactly {sorted(expected)} (each once)")
    assert not bad, "\n".join(bad)

def test_every_notebook_plans_its_settings(registry):
    """Each pipeline notebook turns its parameters into its phase's settings with one call,
    `phase_settings("<phase>", settings, preset, outputs=outputs[, <key>=<key>])`."""
    bad = []
    for name, p in registry.PHASES.items():
        nb = ROOT/"nbs"/"pipelines"/f"{p.notebook}.ipynb"
        if not nb.exists(): continue        # test_every_phase_has_its_notebook says so
        calls = [n for src in code_cells(nb) for n in ast.walk(ast.parse("\n".join(
                     l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))))
                 if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "phase_settings"]
        expected_kw = {"outputs": "outputs"} | ({p.key: p.key} if p.key else {})
        want = (f"phase_settings({name!r}, settings, preset, "
                + ", ".join(f"{k}={v}" for k, v in expected_kw.items()) + ")")
        if len(calls) != 1: bad.append(f"{nb}: {len(calls)} calls of phase_settings, expected one: {want}"); continue
        c = calls[0]
        args, kw = [ast.unparse(a) for a in c.args], {k.arg: ast.unparse(k.value) for k in c.keywords}
        if args != [repr(name), "settings", "preset"] or kw != expected_kw:
            bad.append(f"{nb}: `{ast.unparse(c)}`, expected {want}")
    assert not bad, "\n".join(bad)

def test_every_pipeline_notebook_is_a_phase(registry):
    notebooks = {p.notebook for p in registry.PHASES.values()}
    strays = sorted(nb.name for nb in (ROOT/"nbs"/"pipelines").glob("*.ipynb") if nb.stem not in notebooks)
    assert not strays, f"nbs/pipelines/ notebooks that no phase runs: {strays}"

def test_presets_agree_with_the_registry(registry):
    by_file = {}
    for p in registry.PHASES.values(): by_file.setdefault(p.params, []).append(p)
    presets = sorted(d for d in (ROOT/"params").iterdir() if d.is_dir())
    assert {d.name for d in presets} >= {"demo", "tiny", "r1"}
    for folder in presets:
        for f in sorted(folder.glob("*.yaml")):
            assert f.stem in by_file, f"{f}: no phase reads {f.name} (params files: {', '.join(sorted(by_file))})"
            for p in by_file[f.stem]:
                try: registry.read_params(f, p.settings, folder.name)
                except Exception as e:
                    raise AssertionError(f"{f} does not load as {p.settings.__name__} (phase {p.name}): {e}") from e
        runs = registry.preset_phases(ROOT, folder.name)
        assert runs, f"preset '{folder.name}' runs no phase"
        for name in runs:
            p = registry.PHASES[name]
            assert (folder/f"{p.params}.yaml").exists(), (f"preset '{folder.name}' runs phase '{name}' "
                                                          f"but has no {p.params}.yaml")
