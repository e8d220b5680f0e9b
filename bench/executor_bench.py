"""kiln.Executor against concurrent.futures.ProcessPoolExecutor, in one run, interleaved.

    executor_bench.py [--rounds N] [--supervisor PATH]

Prints one Markdown row per figure (the table of bench/RESULTS.md): the median over the rounds
with the rounds' range, the comparison's, their ratio and the target. Two workers throughout.
"""

import argparse
import concurrent.futures
import importlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import kiln  # noqa: E402

PAYLOAD = b"x" * 64
# A Debian python3 package that takes well over 50 ms to import (measured in main()).
HEAVY = "setuptools"


def identity(x):
    return x


def heavy_call():
    module = importlib.import_module(HEAVY)
    return module.__name__


def crash():
    os.kill(os.getpid(), signal.SIGSEGV)


def round_trip_us(ex, n):
    ex.submit(identity, PAYLOAD).result()  # warm
    times = []
    for _ in range(n):
        t = time.perf_counter()
        ex.submit(identity, PAYLOAD).result()
        times.append((time.perf_counter() - t) * 1e6)
    return statistics.median(times)


def throughput(ex, n):
    ex.submit(identity, PAYLOAD).result()
    t = time.perf_counter()
    futures = [ex.submit(identity, PAYLOAD) for _ in range(n)]
    for f in futures:
        f.result()
    return n / (time.perf_counter() - t)


def start_to_first_result_ms(make):
    t = time.perf_counter()
    ex = make()
    ex.submit(identity, PAYLOAD).result()
    elapsed = (time.perf_counter() - t) * 1000
    ex.shutdown()
    return elapsed


def heavy_per_job_ms(n, supervisor):
    with kiln.Executor(2, preload=[HEAVY], supervisor=supervisor) as ex:
        ex.submit(heavy_call).result()
        t = time.perf_counter()
        for _ in range(n):
            ex.submit(heavy_call).result()
        warm = (time.perf_counter() - t) * 1000 / n
    with kiln.Pool(2, supervisor=supervisor, log_level="error") as pool:
        argv = [sys.executable, "-c", f"import {HEAVY}"]
        pool.exec(argv).result()
        t = time.perf_counter()
        for _ in range(n):
            assert pool.exec(argv).result().exit_code == 0
        cold = (time.perf_counter() - t) * 1000 / n
    return warm, cold


def crash_to_next_result_ms(ex):
    """(crash submitted to the next job's result, the crash's result to the next job's)."""
    ex.submit(identity, PAYLOAD).result()
    t = time.perf_counter()
    try:
        ex.submit(crash).result()
    except kiln.WorkerCrashed:
        pass
    crashed = time.perf_counter()
    ex.submit(identity, PAYLOAD).result()
    done = time.perf_counter()
    # The replacement's start is not part of the next figure: wait until both are up again.
    while ex.pool.stats()["workers_busy"] or len(
            [w for w in ex.pool.stats()["worker_list"] if w["state"] == "idle"]) < 2:
        time.sleep(0.01)
    return (done - t) * 1000, (done - crashed) * 1000


def kiln_idle_rss_kb(supervisor):
    with kiln.Executor(1, supervisor=supervisor) as ex:
        ex.submit(identity, PAYLOAD).result()
        time.sleep(0.2)  # idle, as measured
        return ex.pool.stats()["worker_list"][0]["rss_kb"]


def ppe_idle_rss_kb():
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as ex:
        pid = ex.submit(os.getpid).result()
        time.sleep(0.2)
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    return 0


def fmt(values, unit, digits=1):
    med = statistics.median(values)
    return med, f"{med:.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def row(figure, kiln_text, comparison, ratio, target, met):
    print(f"| {figure} | {kiln_text} | {comparison} | {ratio} | {target} | {'yes' if met else '**no**'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--supervisor")
    args = parser.parse_args()
    sup = args.supervisor
    fork = multiprocessing.get_context("fork")
    spawn = multiprocessing.get_context("spawn")

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {HEAVY}"], check=True)
    heavy_import_ms = (time.perf_counter() - t) * 1000

    rtt_k, rtt_p, tp_k, tp_p, st_k, st_p, hv_w, hv_c, crash_ms, after_ms = ([] for _ in range(10))
    for _ in range(args.rounds):
        with kiln.Executor(2, supervisor=sup) as ex:
            rtt_k.append(round_trip_us(ex, 2000))
            tp_k.append(throughput(ex, 20000))
            whole, after = crash_to_next_result_ms(ex)
            crash_ms.append(whole)
            after_ms.append(after)
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=fork) as ex:
            rtt_p.append(round_trip_us(ex, 2000))
            tp_p.append(throughput(ex, 20000))
        st_k.append(start_to_first_result_ms(lambda: kiln.Executor(2, supervisor=sup)))
        st_p.append(start_to_first_result_ms(
            lambda: concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn)))
        warm, cold = heavy_per_job_ms(20, sup)
        hv_w.append(warm)
        hv_c.append(cold)
    rss_k, rss_p = kiln_idle_rss_kb(sup), ppe_idle_rss_kb()

    k, kt = fmt(rtt_k, "us")
    p, pt = fmt(rtt_p, "us")
    row("Executor: identity(64 B) round trip, median, 2 workers", kt,
        f"ProcessPoolExecutor (fork) {pt}", f"{k / p:.2f}x its time", "<= 0.6x", k / p <= 0.6)
    k, kt = fmt(tp_k, "jobs/s", 0)
    p, pt = fmt(tp_p, "jobs/s", 0)
    row("Executor: 20000 identity jobs submitted at once", kt,
        f"ProcessPoolExecutor (fork) {pt}", f"{k / p:.2f}x its jobs/s", ">= 2x", k / p >= 2)
    k, kt = fmt(st_k, "ms")
    p, pt = fmt(st_p, "ms")
    row("Executor(2) created to its first result", kt, f"ProcessPoolExecutor (spawn) {pt}",
        f"{p / k:.2f}x faster", "<= 100 ms and faster", k <= 100 and k < p)
    k, kt = fmt(hv_w, "ms", 2)
    p, pt = fmt(hv_c, "ms", 2)
    row(f"a job that needs `import {HEAVY}` ({heavy_import_ms:.0f} ms alone), preloaded", kt,
        f"the same as an exec of python3 -c per job {pt}", f"{p / k:.0f}x faster", ">= 20x faster",
        p / k >= 20)
    k, kt = fmt(after_ms, "ms", 2)
    row("a crashing job's result, to the next job's result (the other worker serves it)", kt,
        "-", "-", "<= 10 ms", k <= 10)
    k, kt = fmt(crash_ms, "ms", 2)
    row("the same from the crashing job's submit (its SIGSEGV and report included)", kt, "-", "-",
        "-", True)
    row("idle RSS of one warm worker plus its Python tool (VmRSS, summed)",
        f"{rss_k / 1024:.2f} MiB ({rss_k} KiB)",
        f"ProcessPoolExecutor (fork) worker {rss_p / 1024:.2f} MiB ({rss_p} KiB)",
        f"{rss_k / rss_p:.2f}x", "no more than it", rss_k <= rss_p)


if __name__ == "__main__":
    main()
