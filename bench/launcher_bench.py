"""What the compiler launcher costs a build: kiln-exec against running the command directly.

    launcher_bench.py [--rounds N] [--bin DIR] [--project DIR] [--files N]

Prints one Markdown row per figure (the table of bench/RESULTS.md), both sides measured in the
same run, interleaved:

- `kiln-exec /bin/true` against `/bin/true`: the median wall time of starting each and waiting
  for it (posix_spawn + waitpid, 400 of each per round, alternating); the target is the
  launcher within 1 ms of the command itself.
- a clean build at -j2 through CMAKE_C_COMPILER_LAUNCHER=kiln-exec against plain ninja, of the
  CMake project in --project (a real one, e.g. a checkout of libuv) or of a generated one of
  --files C files; the target is within 2%. The objects of both builds are compared byte for
  byte.

The daemon is the one kiln-exec starts, on a socket of its own, with 2 workers.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

JOBS = 2


def spawn_wait_us(argv, env):
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env)
    _, status = os.waitpid(pid, 0)
    took = (time.perf_counter() - start) * 1e6
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"launcher_bench: {' '.join(argv)} failed ({status})")
    return took


def true_overhead(kiln_exec, env, rounds):
    """Per round: the medians of 400 alternated runs of each. Returns the per-round medians."""
    launcher, direct = [], []
    for _ in range(rounds):
        a, b = [], []
        for _ in range(400):
            a.append(spawn_wait_us([kiln_exec, "/bin/true"], env))
            b.append(spawn_wait_us(["/bin/true"], env))
        launcher.append(statistics.median(a))
        direct.append(statistics.median(b))
    return launcher, direct


def generate_project(root, files):
    """A C library of `files` sources of some 120 lines each, alike but not identical."""
    rng = random.Random(1)
    os.makedirs(os.path.join(root, "src"))
    with open(os.path.join(root, "src", "common.h"), "w") as h:
        h.write("#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n"
                "#include <stdlib.h>\n#include <string.h>\n"
                "struct item { uint32_t key; double weight; char name[32]; };\n"
                "#define CLAMP(x, lo, hi) ((x) < (lo) ? (lo) : (x) > (hi) ? (hi) : (x))\n")
    names = []
    for i in range(files):
        name = f"src/unit{i:04d}.c"
        names.append(name)
        with open(os.path.join(root, name), "w") as f:
            f.write('#include "common.h"\n')
            for j in range(6):
                k = rng.randint(2, 97)
                f.write(
                    f"static int cmp_{j}(const void* a, const void* b) {{\n"
                    f"  const struct item* x = a; const struct item* y = b;\n"
                    f"  return (x->key % {k}) < (y->key % {k}) ? -1 : x->weight > y->weight;\n}}\n"
                    f"double unit{i}_f{j}(struct item* items, size_t n, const char* tag) {{\n"
                    f"  double sum = 0;\n"
                    f"  for (size_t i = 0; i < n; ++i) {{\n"
                    f"    items[i].key = items[i].key * {k}u + (uint32_t)i;\n"
                    f"    snprintf(items[i].name, sizeof items[i].name, \"%s-%zu-{j}\", tag, i);\n"
                    f"    switch (items[i].key % 5) {{\n"
                    f"      case 0: sum += CLAMP(items[i].weight, 0.0, {k}.0); break;\n"
                    f"      case 1: sum -= items[i].weight / {k}; break;\n"
                    f"      case 2: sum += strlen(items[i].name); break;\n"
                    f"      default: sum *= 1.0 + 1.0 / (i + {k});\n"
                    f"    }}\n  }}\n"
                    f"  qsort(items, n, sizeof *items, cmp_{j});\n"
                    f"  return sum;\n}}\n")
    with open(os.path.join(root, "CMakeLists.txt"), "w") as c:
        c.write("cmake_minimum_required(VERSION 3.16)\nproject(generated C)\n"
                f"add_library(generated STATIC {' '.join(names)})\n")


def configure(source, build, env, launcher=None):
    args = ["cmake", "-G", "Ninja", "-S", source, "-B", build, "-DCMAKE_BUILD_TYPE=Release"]
    if launcher:
        args.append(f"-DCMAKE_C_COMPILER_LAUNCHER={launcher}")
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)


def clean_build_s(build, env):
    subprocess.run(["ninja", "-C", build, "-t", "clean"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    start = time.perf_counter()
    subprocess.run(["ninja", "-C", build, f"-j{JOBS}"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def objects(build):
    found = {}
    for top, _, names in os.walk(build):
        for n in names:
            if n.endswith(".o"):
                path = os.path.join(top, n)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, build)] = f.read()
    return found


def builds(source, kiln_exec, env, rounds, work):
    plain, launched = os.path.join(work, "plain"), os.path.join(work, "kiln")
    configure(source, plain, env)
    configure(source, launched, env, kiln_exec)
    clean_build_s(plain, env)  # warm the page cache and the daemon
    clean_build_s(launched, env)
    a, b = [], []
    for _ in range(rounds):
        a.append(clean_build_s(launched, env))
        b.append(clean_build_s(plain, env))
    ours, theirs = objects(launched), objects(plain)
    if len(ours) == 0 or ours != theirs:
        sys.exit(f"launcher_bench: the objects differ ({len(ours)} against {len(theirs)})")
    return a, b, len(ours)


def spread(values, scale, unit):
    med = statistics.median(values) * scale
    return f"{med:.{1 if scale > 1 else 2}f} {unit} ({min(values) * scale:.2f}-{max(values) * scale:.2f})"


def row(figure, kiln_text, comparison, ratio, target, met):
    print(f"| {figure} | {kiln_text} | {comparison} | {ratio} | {target} | {'yes' if met else '**no**'} |")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bin", default=os.path.join(here, "..", "build", "bin"))
    parser.add_argument("--project", help="a CMake project to build (default: a generated one)")
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    kiln_exec = os.path.abspath(os.path.join(args.bin, "kiln-exec"))
    work = tempfile.mkdtemp(prefix="kiln-launcher-bench.")
    os.chmod(work, 0o700)
    env = dict(os.environ, KILN_SOCKET=os.path.join(work, "s.sock"), KILN_WORKERS=str(JOBS))
    try:
        spawn_wait_us([kiln_exec, "/bin/true"], env)  # starts the daemon
        launcher, direct = true_overhead(kiln_exec, env, args.rounds)
        over = statistics.median(launcher) - statistics.median(direct)
        row("`kiln-exec /bin/true` against `/bin/true`, median wall",
            spread(launcher, 1, "us"), f"`/bin/true` {spread(direct, 1, 'us')}",
            f"+{over:.0f} us", "within 1000 us", over <= 1000)
        source = args.project
        label = None
        if source:
            label = os.path.basename(os.path.abspath(source))
            commit = subprocess.run(["git", "-C", source, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
            label += f" at {commit}" if commit else ""
        if not source:
            source = os.path.join(work, "generated")
            generate_project(source, args.files)
            label = f"a generated project of {args.files} C files"
        a, b, count = builds(os.path.abspath(source), kiln_exec, env, args.rounds, work)
        ratio = statistics.median(a) / statistics.median(b)
        row(f"clean build of {label} ({count} objects, identical), ninja -j{JOBS}, through kiln-exec",
            spread(a, 1, "s"), f"plain ninja -j{JOBS} {spread(b, 1, 's')}", f"{ratio:.3f}x",
            "<= 1.02x", ratio <= 1.02)
    finally:
        subprocess.run([os.path.join(args.bin, "kiln"), "shutdown", "--socket",
                        env["KILN_SOCKET"]], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
