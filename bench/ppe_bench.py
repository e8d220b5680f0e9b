"""The comparison everyone has at hand: Python's concurrent.futures.ProcessPoolExecutor.

    ppe_bench.py echo-rtt N          median and p99 microseconds of N one-at-a-time round trips
    ppe_bench.py echo-throughput N   jobs per second with N jobs submitted at once (map)
    ppe_bench.py start N             microseconds until N workers have each run a job
    ppe_bench.py worker-rss          VmRSS in KiB of one idle worker
    ppe_bench.py kiln-echo-throughput N SUPERVISOR
                                     the same burst as echo-throughput through Kiln's Python
                                     client (kiln.Pool.map, echo jobs), for the same
                                     comparison; then the same with a kiln.Pool.submit per job

Each prints its figures on its last line. Two workers unless said otherwise; the payload is 30
bytes, as in the Kiln runs.
"""

import concurrent.futures
import multiprocessing
import os
import statistics
import sys
import time

PAYLOAD = b"x" * 30


def echo(x):
    return x


_barrier = None


def _keep_barrier(barrier):
    global _barrier
    _barrier = barrier


def pid_when_all_are_up(_):
    """Returns only once every worker runs one of these: proof that all of them are up."""
    _barrier.wait()
    return os.getpid()


def main():
    mode, *rest = sys.argv[1:]
    if mode == "echo-rtt":
        n = int(rest[0])
        with concurrent.futures.ProcessPoolExecutor(2) as ex:
            for _ in range(200):
                ex.submit(echo, PAYLOAD).result()
            samples = []
            for _ in range(n):
                t = time.perf_counter()
                ex.submit(echo, PAYLOAD).result()
                samples.append((time.perf_counter() - t) * 1e6)
        samples.sort()
        print(statistics.median(samples), samples[min(len(samples) - 1, len(samples) * 99 // 100)])
    elif mode == "echo-throughput":
        n = int(rest[0])
        with concurrent.futures.ProcessPoolExecutor(2) as ex:
            list(ex.map(echo, [PAYLOAD] * 200))
            t = time.perf_counter()
            values = list(ex.map(echo, [PAYLOAD] * n))  # a submit per job, then the results
            rate = n / (time.perf_counter() - t)
            assert values == [PAYLOAD] * n
            print(rate)
    elif mode == "start":
        n = int(rest[0])
        t = time.perf_counter()
        barrier = multiprocessing.Barrier(n)
        ex = concurrent.futures.ProcessPoolExecutor(n, initializer=_keep_barrier, initargs=(barrier,))
        pids = set(ex.map(pid_when_all_are_up, range(n)))
        elapsed = (time.perf_counter() - t) * 1e6
        ex.shutdown()
        assert len(pids) == n
        print(elapsed)
    elif mode == "kiln-echo-throughput":
        n, supervisor = int(rest[0]), rest[1]
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
        import kiln

        with kiln.Pool(2, supervisor=supervisor, log_level="error") as pool:
            list(pool.map("echo", [PAYLOAD] * 200))
            t = time.perf_counter()
            values = list(pool.map("echo", [PAYLOAD] * n))
            map_rate = n / (time.perf_counter() - t)
            assert values == [PAYLOAD] * n
            t = time.perf_counter()
            futures = [pool.submit("echo", PAYLOAD) for _ in range(n)]
            values = [f.result() for f in futures]
            submit_rate = n / (time.perf_counter() - t)
            assert values == [PAYLOAD] * n
            print(map_rate, submit_rate)
    elif mode == "worker-rss":
        with concurrent.futures.ProcessPoolExecutor(1) as ex:
            pid = ex.submit(os.getpid).result()
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            print(rss)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
