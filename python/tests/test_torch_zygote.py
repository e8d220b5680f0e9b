"""The zygote with torch (run by the venv's interpreter, scripts/setup-venv.sh): every tool of a
pool forked from one interpreter that imported torch once, with its own random state and little
memory of its own."""

import os
import subprocess
import sys

import pytest

import torch  # noqa: E402  (the venv suites must fail, not skip, without torch)

import kiln  # noqa: E402
from conftest import wait_until  # noqa: E402


def tool_state(_):
    import sys
    import time

    time.sleep(0.3)  # so that two jobs at once run on the two tools
    return os.getpid(), os.getppid(), "torch" in sys.modules, torch.rand(4).tolist()


def private_kb():
    kb = 0
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                kb += int(line.split()[1])
    return kb


def test_torch_tools_are_forked_from_one_zygote_with_their_own_random_state(supervisor):
    with kiln.Executor(2, supervisor=supervisor, preload=["torch"]) as ex:
        states = {}
        assert wait_until(lambda: len(states.update(
            (s[0], s) for s in ex.map(tool_state, range(2))) or states) == 2, 120)
        (a, b) = states.values()
        assert a[1] == b[1], "one zygote"
        assert a[2] and b[2], "torch was imported before the fork"
        assert a[3] != b[3], "fresh seeds in each tool"


def test_a_forked_torch_tool_holds_little_memory_of_its_own(supervisor):
    """Its private memory (USS), after a job, against the RSS of one interpreter that imported
    torch alone (the figure of bench/torch_warmth_bench.py)."""
    lone = subprocess.run([sys.executable, "-c", "import torch, kiln.tool\n"
                           "print(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')))"],
                          check=True, capture_output=True, text=True).stdout
    lone_kb = int(lone.split()[1])
    with kiln.Executor(1, supervisor=supervisor, preload=["torch"]) as ex:
        private = ex.submit(private_kb).result()
    assert private <= 0.10 * lone_kb, (private, lone_kb)
