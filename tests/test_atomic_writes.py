"""Every file the library or a pipeline notebook writes goes through a temporary name and a rename (the atomic
helper, or a write into a temporary path that is renamed after), so a kill never leaves a half-written output
that looks complete. This scans the generated library and the pipeline notebooks' code for direct writes."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# a call that writes a file (the destination is its receiver or one of its arguments)
WRITES = re.compile(r"(\.write_text|\.write_bytes|\bnp\.savez?|\bnp\.savez_compressed|\btorch\.save|\bjson\.dump|\.savefig|\.to_csv|"
                    r"\.to_parquet|\.to_json|\bpq\.write_table|\bsave_file|\.save_pretrained|\bnbformat\.write|\bopen)\(([^)]*)")
# writes that are not outputs of a phase, each with its reason
ALLOWED = {
    ("io.py", "tmp.write_text"): "the atomic helper itself",
    ("fixtures.py", "nbformat.write(nb, path)"): "make_notebook: test notebooks for the runner's own checks",
    ("report.py", "fig.savefig(buf,"): "into an in-memory buffer: the figure becomes a data: URI in the page",
}

def _direct_writes(text:str, name:str) -> list[str]:
    "Lines of `text` that write a file directly: not to a temporary name (renamed after) and not through the atomic helper."
    bad = []
    for line in text.splitlines():
        code = line.split("  #", 1)[0]
        for m in WRITES.finditer(code):
            fn, args = m.group(1), m.group(2).strip()
            if fn in (".to_csv", ".to_json") and (args == "" or re.match(r"^\w+=", args)): continue    # to a string
            if fn == "open" and not re.search(r"""['"][wax]b?\+?['"]""", args): continue          # opened for reading
            if re.search(r"\btmp|temp", code, re.I): continue          # a temporary name, renamed after
            if any(n == name and s in code for (n, s) in ALLOWED): continue
            bad.append(f"{name}: {line.strip()}")
    return bad

def test_scanner_finds_direct_writes():
    assert _direct_writes('np.savez(run/"feature_counts.npz", **counts)', "x.py")
    assert _direct_writes('(out/"eval.json").write_text(json.dumps(e))', "x.py")
    assert _direct_writes('df.to_csv(out/"a.csv", index=False)', "x.py")
    assert _direct_writes('with open(out/"a.txt", "w") as f: f.write(s)', "x.py")
    assert not _direct_writes('atomic_write_text(out/"a.csv", df.to_csv(index=False))', "x.py")
    assert not _direct_writes('torch.save(state, tmp); os.replace(tmp, path)', "x.py")
    assert not _direct_writes('with open(path) as f: data = f.read()', "x.py")

def test_library_writes_atomically():
    bad = []
    for p in sorted((ROOT/"r1_interp").rglob("*.py")):
        if p.name != "_modidx.py": bad += _direct_writes(p.read_text(), p.name)
    assert bad == [], "direct writes (use r1_interp.core.io.atomic_write_text, or a temporary name and os.replace):\n" + "\n".join(bad)

def test_pipeline_notebooks_write_atomically():
    bad = []
    for p in sorted((ROOT/"nbs"/"pipelines").glob("*.ipynb")):
        for c in json.loads(p.read_text())["cells"]:
            if c["cell_type"] == "code": bad += _direct_writes("".join(c["source"]), p.name)
    assert bad == [], "direct writes in pipeline notebooks:\n" + "\n".join(bad)
