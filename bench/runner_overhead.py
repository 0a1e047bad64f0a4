"""Per-notebook overhead of r1-interp's runner against a bare `jupyter nbconvert --execute`, measured in one run.

Both execute the same trivial notebook (a parameters cell and one print), so the wall time is overhead. The runner
is measured the way `run_batch` uses it: papermill imported once per worker process, then one notebook after
another, each with its HTML report. Also printed: the cost of `import papermill` in a fresh interpreter, the
import chain the runner pays once per worker instead of once per notebook.

    python bench/runner_overhead.py [--n 5]
"""
import argparse, statistics, subprocess, sys, tempfile, time
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--n", type=int, default=5); a = ap.parse_args()
    from r1_interp.pipeline.runner import Job, run_job
    from r1_interp.testing.fixtures import make_notebook
    d = Path(tempfile.mkdtemp())
    nb = make_notebook(["print('value', x * 2)"], d/"trivial.ipynb", parameters="x = 1")

    t0 = time.perf_counter(); subprocess.run([sys.executable, "-c", "import papermill"], check=True)
    imp = time.perf_counter() - t0
    t0 = time.perf_counter(); subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare_py = time.perf_counter() - t0

    ours, nbconv = [], []
    run_job(Job(nb, d/"warm"/"w.ipynb", dict(x=0)), force=True)   # the worker's one-time papermill import
    for i in range(a.n):   # interleaved, so machine noise hits both alike
        t0 = time.perf_counter(); run_job(Job(nb, d/"ours"/f"r{i}.ipynb", dict(x=i)), force=True); ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run(["jupyter", "nbconvert", "--to", "notebook", "--execute", str(nb), "--output-dir", str(d/"nbc"), "--output", f"r{i}"],
                       check=True, capture_output=True)
        nbconv.append(time.perf_counter() - t0)
    mo, mn = statistics.median(ours), statistics.median(nbconv)
    print(f"import papermill (fresh interpreter): {imp:.2f}s (python alone: {bare_py:.2f}s)")
    print(f"runner, per notebook (papermill + HTML report): median {mo:.2f}s over {a.n}  {['%.2f' % t for t in ours]}")
    print(f"jupyter nbconvert --execute, per notebook:      median {mn:.2f}s over {a.n}  {['%.2f' % t for t in nbconv]}")
    print(f"ratio runner / nbconvert: {mo/mn:.2f}  (target: runner overhead under 3 s per notebook: {'met' if mo < 3 else 'NOT met'})")

if __name__ == "__main__": main()
