"""The jobs of torch_warmth_bench.py, in a module of their own: every pool compared (SubprocPool's
sidecar too) loads them by name."""

import os
import time


def import_torch():
    import torch  # noqa: F401


def all_serving(directory, n, _=None):
    """Returns once n distinct processes run this at once: proof that every worker serves."""
    open(os.path.join(directory, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(directory)) < n and time.monotonic() < deadline:
        time.sleep(0.0005)
    return os.getpid()


def pid_of_tool():
    return os.getpid()


def crash():
    os._exit(9)


def private_kb():
    """Private memory (USS) of the calling process: the pages only it maps."""
    kb = 0
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                kb += int(line.split()[1])
    return kb
