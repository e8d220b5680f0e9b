"""Compile C++ snippets in parallel on warm workers with kiln.Executor, the way PyTorch
Inductor's SubprocPool compiles its kernels: the compile function is pickled to a warm Python
interpreter beside each worker, which runs the compiler and sends back the library's path; the
caller loads it.

    /usr/bin/python3 examples/python/parallel_compile.py      (from the top of a checkout)
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import kiln  # noqa: E402

KERNEL = """
extern "C" long kernel(long x) {{ return x * {factor} + {offset}; }}
"""


def compile_kernel(source, out_dir, name):
    """Runs in a worker: one compiler invocation, its diagnostics raised as an error."""
    src = os.path.join(out_dir, name + ".cpp")
    lib = os.path.join(out_dir, name + ".so")
    with open(src, "w") as f:
        f.write(source)
    proc = subprocess.run(["c++", "-O2", "-shared", "-fPIC", src, "-o", lib],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {proc.stderr.strip()}")
    return lib


def main():
    out_dir = tempfile.mkdtemp(prefix="kiln-kernels-")
    sources = {f"k{i}": KERNEL.format(factor=i, offset=100 + i) for i in range(8)}
    sources["broken"] = "extern \"C\" long kernel(long x) { return y; }"
    try:
        run(sources, out_dir)
    finally:
        shutil.rmtree(out_dir)


def run(sources, out_dir):
    with kiln.Executor(max_workers=2) as ex:
        futures = {name: ex.submit(compile_kernel, src, out_dir, name)
                   for name, src in sources.items()}
        for name, future in futures.items():
            try:
                lib = ctypes.CDLL(future.result())
                lib.kernel.restype = ctypes.c_long
                print(f"{name}: kernel(3) = {lib.kernel(3)}")
            except RuntimeError as e:  # what compile_kernel raised, with its own type
                print(f"{name}: failed: {e.args[0].splitlines()[0]}")


if __name__ == "__main__":
    main()
