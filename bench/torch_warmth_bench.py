"""A pool whose workers import torch: Kiln's (its Python tool forked from one zygote per pool)
against one `python -c "import torch"`, ProcessPoolExecutor (spawn, an initializer importing
torch) and PyTorch's own SubprocPool (a sidecar that imports torch and forks its workers).

    torch_warmth_bench.py --supervisor PATH [--rounds N] [--results FILE]

Run with an interpreter that has torch (scripts/setup-venv.sh). Prints one Markdown row per
figure (the table of bench/RESULTS.md), the median over the rounds with their range; with
--results it also replaces the rows of the same figures in FILE. The comparisons run in the same
rounds, interleaved.
"""

import argparse
import concurrent.futures
import functools
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import kiln  # noqa: E402
from torch_warmth_jobs import all_serving, crash, import_torch, pid_of_tool, private_kb  # noqa: E402

# SubprocPool's sidecar and ProcessPoolExecutor's spawned workers load the jobs by name.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.dirname(os.path.abspath(__file__))] + [p for p in [os.environ.get("PYTHONPATH")] if p])


def one_import_ms():
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return (time.perf_counter() - t) * 1e3


def lone_rss_kb():
    out = subprocess.run(
        [sys.executable, "-c",
         "import torch, re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"],
        check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1])


def serve_all(submit, n):
    with tempfile.TemporaryDirectory() as d:
        futures = [submit(functools.partial(all_serving, d, n)) for _ in range(n)]
        pids = {f.result(timeout=300) for f in futures}
    assert len(pids) == n, pids


def kiln_start_ms(supervisor, n):
    t = time.perf_counter()
    with kiln.Executor(n, supervisor=supervisor, preload=["torch"]) as ex:
        serve_all(ex.submit, n)
        return (time.perf_counter() - t) * 1e3


def ppe_start_ms(n):
    t = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(
        n, mp_context=multiprocessing.get_context("spawn"), initializer=import_torch
    ) as ex:
        serve_all(ex.submit, n)
        return (time.perf_counter() - t) * 1e3


def subproc_pool(n):
    from torch._inductor.compile_worker.subproc_pool import SubprocPool

    return SubprocPool(n)


def subproc_start_ms(n):
    t = time.perf_counter()
    pool = subproc_pool(n)
    try:
        serve_all(pool.submit, n)
        return (time.perf_counter() - t) * 1e3
    finally:
        pool.shutdown()


def kiln_crash_to_replacement_ms(supervisor):
    with kiln.Executor(1, supervisor=supervisor, preload=["torch"]) as ex:
        ex.submit(pid_of_tool).result()
        try:
            ex.submit(crash).result()
        except kiln.WorkerCrashed:
            pass
        t = time.perf_counter()
        ex.submit(pid_of_tool).result()
        return (time.perf_counter() - t) * 1e3


def kiln_uss_kb(supervisor):
    with kiln.Executor(1, supervisor=supervisor, preload=["torch"]) as ex:
        idle = ex.submit(private_kb).result()
        ex.submit(import_torch).result()
        return idle, ex.submit(private_kb).result()


def subproc_uss_kb():
    pool = subproc_pool(1)
    try:
        idle = pool.submit(private_kb).result(timeout=300)
        pool.submit(import_torch).result(timeout=300)
        return idle, pool.submit(private_kb).result(timeout=300)
    finally:
        pool.shutdown()


def fmt(values, unit, digits=1):
    return f"{statistics.median(values):.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def row(figure, kiln_text, comparison, ratio, target, met):
    return f"| {figure} | {kiln_text} | {comparison} | {ratio} | {target} | {met} |"


def start_rows(m, n):
    imp, k, p, s = (statistics.median(m[key]) for key in ("import", f"kiln{n}", f"ppe{n}", f"sub{n}"))
    bound = 1.15 if n == 2 else 1.3
    figure = f"pool of {n} workers with preload torch, created to every worker serving"
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    return [
        row(figure, fmt(m[f"kiln{n}"], "ms"), "one `python -c \"import torch\"` " + fmt(m["import"], "ms"),
            f"{k / imp:.2f}x", f"<= {bound}x the one import", yes(k <= bound * imp)),
        row(figure + ", against ProcessPoolExecutor (spawn, initializer importing torch)",
            fmt(m[f"kiln{n}"], "ms"), "ProcessPoolExecutor " + fmt(m[f"ppe{n}"], "ms"),
            f"{p / k:.2f}x faster", "faster" if n == 2 else "-", yes(k < p) if n == 2 else "-"),
        row(figure + ", against PyTorch's SubprocPool warm-up", fmt(m[f"kiln{n}"], "ms"),
            f"SubprocPool({n}) " + fmt(m[f"sub{n}"], "ms"), f"{s / k:.2f}x faster",
            "faster" if n == 2 else "-", yes(k < s) if n == 2 else "-"),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--supervisor", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--results")
    args = ap.parse_args()
    m = {key: [] for key in ("import", "kiln2", "ppe2", "sub2", "kiln8", "ppe8", "sub8", "crash")}
    for _ in range(args.rounds):
        m["import"].append(one_import_ms())
        for n in (2, 8):
            m[f"kiln{n}"].append(kiln_start_ms(args.supervisor, n))
            m[f"ppe{n}"].append(ppe_start_ms(n))
            m[f"sub{n}"].append(subproc_start_ms(n))
        m["crash"].append(kiln_crash_to_replacement_ms(args.supervisor))
    lone = lone_rss_kb()
    k_idle, k_after = kiln_uss_kb(args.supervisor)
    s_idle, s_after = subproc_uss_kb()
    crash_ms = statistics.median(m["crash"])
    rows = start_rows(m, 2) + start_rows(m, 8) + [
        row("a crashed torch tool, to its replacement serving", fmt(m["crash"], "ms"),
            "one import " + fmt(m["import"], "ms"), f"{crash_ms / statistics.median(m['import']):.3f}x",
            "<= 50 ms", "yes" if crash_ms <= 50 else "**no**"),
    ]
    for what, k, s in (("idle", k_idle, s_idle), ("after one job", k_after, s_after)):
        ok = k <= 0.10 * lone and k <= s
        rows.append(row(f"private memory (USS) of a forked torch tool, {what}",
                        f"{k / 1024:.1f} MiB ({k} KiB)",
                        f"lone interpreter's RSS {lone / 1024:.1f} MiB; SubprocPool worker's USS "
                        f"{s / 1024:.1f} MiB", f"{k / lone:.3f}x the lone RSS",
                        "<= 0.10x it, and <= SubprocPool's", "yes" if ok else "**no**"))
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average after: {' '.join(load)}", file=sys.stderr)
    for r in rows:
        print(r)
    if args.results:
        replace_rows(args.results, rows)


def replace_rows(path, rows):
    """Puts the rows in the results table: each in place of the row of the same figure, or after
    the table's last row."""
    lines = open(path).read().split("\n")
    figures = {r.split(" | ")[0]: r for r in rows}
    out, placed = [], set()
    for line in lines:
        key = line.split(" | ")[0]
        if key in figures:
            out.append(figures[key])
            placed.add(key)
        else:
            out.append(line)
    last = max(i for i, line in enumerate(out) if line.startswith("|"))
    out[last + 1:last + 1] = [r for k, r in figures.items() if k not in placed]
    open(path, "w").write("\n".join(out))


if __name__ == "__main__":
    main()
