"""kiln.inductor against Inductor's own pools, side by side in one run (rows for RESULTS.md).

    build/venv/bin/python bench/inductor_bench.py [--rounds N]

Each figure is measured in a fresh interpreter (torch imported before the clock starts), the two
sides interleaved round by round; the median and the range are printed as RESULTS.md rows:
- cold torch.compile of a reference model (an MLP and a small convolutional net, Inductor's
  caches disabled, a fresh cache directory), the first call's wall time;
- a SubprocPool(2)-style pool, from its creation to its first result,
  beside the floor of any pool that imports torch once: one new interpreter importing what
  the workers of both pools import;
- the processes and PSS the compile pool holds while idle 2 s after that compile, and right after
  it (for Inductor's own, also with its SubprocPool warmed as it is where Triton is installed);
- a crashed job (os._exit in the job) to the next job's result, beside its floor: a process
  forked from one that imported torch exiting, to its parent's reap.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(HERE, "..", "python")

_COMMON = """
import json, os, sys, time
os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"
import torch, torch._inductor.async_compile
from torch._inductor import async_compile, config
KILN = sys.argv[1] == "kiln"
if KILN:
    import kiln.inductor

def pool_processes():
    me = os.getpid()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        found.append((int(pid), ppid))
    children, frontier = [], {me}
    while frontier:
        frontier = {pid for pid, ppid in found if ppid in frontier}
        children += frontier
    pss = 0
    for pid in children:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss += sum(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except OSError:
            pass
    return len(children), pss
"""

_COMPILE = _COMMON + """
if KILN:
    kiln.inductor.install()
elif sys.argv[2] == "warm":
    async_compile.AsyncCompile.warm_pool(); async_compile.AsyncCompile.wakeup()
    async_compile.AsyncCompile.process_pool().submit(int, 1).result()
torch.manual_seed(0)
mlp = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 10))
conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                           torch.nn.Flatten(), torch.nn.Linear(8, 10))
def model(x, img):
    return mlp(x).softmax(-1) + conv(img)
x, img = torch.randn(4, 64), torch.randn(4, 3, 16, 16)
with torch.no_grad():
    start = time.perf_counter()
    torch.compile(model)(x, img)
    wall = time.perf_counter() - start
procs, pss = pool_processes()
time.sleep(2)  # idle: Kiln's compiler pool stops 1 s after its last compile
later = pool_processes()
print(json.dumps({"wall": wall, "procs": procs, "pss_kb": pss, "procs2": later[0], "pss2_kb": later[1]}))
"""

_POOL = _COMMON + """
import operator
from torch._inductor.compile_worker.subproc_pool import SubprocPool
cls = kiln.inductor.KilnSubprocPool if KILN else SubprocPool
start = time.perf_counter()
pool = cls(2)
pool.submit(operator.add, 1, 1).result()
first = time.perf_counter() - start
pool.submit(operator.add, 1, 1).result()
if KILN:  # both workers warm, as SubprocPool's are once it has served (they are forked then)
    while any(w["state"] != "idle" for w in pool.kiln_pool.stats()["worker_list"]):
        time.sleep(0.05)
start = time.perf_counter()
try:
    pool.submit(os._exit, 3).result()
except BaseException:
    pass
pool.submit(operator.add, 2, 2).result()
crash = time.perf_counter() - start
pool.shutdown()
# The floor of any pool's crash answer: a process forked from one that imported torch exits, and
# its parent reaps it (the kernel frees its address space before any pipe of it closes).
go_read, go_write = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(go_read, 1)
    os._exit(3)
os.close(go_read)
start = time.perf_counter()
os.write(go_write, b"x")
os.waitpid(pid, 0)
exit_floor = time.perf_counter() - start
print(json.dumps({"first": first, "crash": crash, "exit_floor": exit_floor}))
"""

_IMPORT = """
import json, subprocess, sys, time
start = time.perf_counter()
subprocess.run([sys.executable, "-c", "import torch._inductor.compile_worker.subproc_pool"],
               check=True)
print(json.dumps({"import": time.perf_counter() - start}))
"""


def run(program, *args):
    """Runs program in a fresh interpreter (argv: args) and returns the JSON it printed last."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache,
                   PYTHONPATH=os.pathsep.join([PYTHON_DIR, os.environ.get("PYTHONPATH", "")]))
        done = subprocess.run([sys.executable, "-c", program, *args], env=env,
                              capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"inductor_bench: {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def figure(values, unit, scale=1.0):
    values = [v * scale for v in values]
    return f"{statistics.median(values):.{1 if scale != 1 else 0}f} {unit} ({min(values):.1f}-{max(values):.1f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = {"kiln": [], "own": [], "warm": [], "pool_kiln": [], "pool_own": [], "import": []}
    for _ in range(args.rounds):
        rows["own"].append(run(_COMPILE, "own", "cold"))
        rows["kiln"].append(run(_COMPILE, "kiln", "cold"))
        rows["pool_own"].append(run(_POOL, "own"))
        rows["pool_kiln"].append(run(_POOL, "kiln"))
        rows["import"].append(run(_IMPORT))
    rows["warm"].append(run(_COMPILE, "own", "warm"))

    def med(side, key):
        return statistics.median(r[key] for r in rows[side])

    def ms(side, key):
        return figure([r[key] for r in rows[side]], "ms", 1000)

    print("| figure | Kiln | comparison | ratio | target | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    ratio = med("kiln", "wall") / med("own", "wall")
    print(f"| cold torch.compile of an MLP + small conv net (caches disabled), first call | "
          f"{ms('kiln', 'wall')} | Inductor's own {ms('own', 'wall')} | {ratio:.2f}x | <= 1.02x | "
          f"{'yes' if ratio <= 1.02 else '**no**'} |")
    ratio = med("pool_kiln", "first") / med("pool_own", "first")
    print(f"| SubprocPool(2)-style pool, created to its first result | {ms('pool_kiln', 'first')} | "
          f"SubprocPool(2) {ms('pool_own', 'first')}; floor: one new interpreter importing "
          f"what both pools' workers import (torch._inductor.compile_worker.subproc_pool) "
          f"{ms('import', 'import')} | {ratio:.2f}x | <= 0.5x | "
          f"{'yes' if ratio <= 0.5 else '**no**'} |")
    idle_row(rows, med)
    ratio = med("pool_kiln", "crash") / med("pool_own", "crash")
    floor = [r["exit_floor"] for r in rows["pool_kiln"] + rows["pool_own"]]
    print(f"| a crashed job (os._exit) to the next job's result | {ms('pool_kiln', 'crash')} | "
          f"SubprocPool(2) {ms('pool_own', 'crash')}; floor: a process forked from one that imported "
          f"torch exiting, to its reap {figure(floor, 'ms', 1000)} | {ratio:.3f}x | <= 0.1x | "
          f"{'yes' if ratio <= 0.1 else '**no**'} |")


def idle_row(rows, med):
    """Idle is 2 s after the compile (Kiln's compiler pool stops 1 s after its last compile);
    right after it is shown too."""
    def procs(side, when):
        return f"{med(side, 'procs' + when):.0f}, {med(side, 'pss' + when + '_kb') / 1024:.1f} MiB"

    warm = rows["warm"][0]
    warm_text = f"{warm['procs2']}, {warm['pss2_kb'] / 1024:.1f} MiB"
    met = med("kiln", "procs2") <= med("own", "procs2") and med("kiln", "pss2_kb") <= med("own", "pss2_kb")
    print(f"| compile pool idle after a compile (2 s later): processes, PSS | {procs('kiln', '2')} "
          f"(right after it: {procs('kiln', '')}) | Inductor's own on this CPU-only torch (no Triton: "
          f"no pool) {procs('own', '2')} (right after: {procs('own', '')}); its SubprocPool warmed as "
          f"with Triton {warm_text} | - | no more | {'yes' if met else '**no**'} |")


if __name__ == "__main__":
    main()
