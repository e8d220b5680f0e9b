"""python -m kiln.inductor [OPTIONS] SCRIPT [ARGS...] | -m MODULE [ARGS...]: runs a program with
its torch.compile compiles on Kiln, unchanged, the way torchrun wraps a script."""

import os
import runpy
import sys

from . import _launch

_USAGE = """usage: python -m kiln.inductor [OPTIONS] SCRIPT [ARGS...]
       python -m kiln.inductor [OPTIONS] -m MODULE [ARGS...]
       python -m kiln.inductor --print-pythonpath

Runs SCRIPT (or MODULE) with PyTorch Inductor's compiles on Kiln (kiln.inductor.install()),
and so does every Python program it starts (through KILN_INDUCTOR and PYTHONPATH).

  --workers N            pool size and Inductor's compile_threads (default: Inductor's)
  --job-timeout S        seconds one compile job may run (default 600)
  --idle-quiesce S       seconds idle before the workers stop (default: Inductor's
                         quiesce_async_compile_time)
  --log-file PATH        the pool's log (default: errors only, on stderr)
  --supervisor PATH      the kiln-supervisor binary
  --max-worker-rss-mb N  replace a worker past this resident size
  --socket PATH          run the compiler commands on the Kiln daemon at PATH (kiln daemon
                         start), where kiln top and kiln stats show them
  --trace FILE           without --socket: write the compiler pool's timeline to FILE
  --print-pythonpath     print the directory to put on PYTHONPATH, with KILN_INDUCTOR="OPTIONS",
                         for programs started by other launchers
"""


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        print(_USAGE, end="")
        return 0
    if argv[:1] == ["--print-pythonpath"]:
        print(_launch.BOOTSTRAP_DIR)
        return 0
    try:
        options, rest = _launch.parse_options(argv)
        if not rest or rest[0] == "-m" and len(rest) < 2:
            raise ValueError("no SCRIPT or -m MODULE to run")
    except ValueError as e:
        print(f"python -m kiln.inductor: {e}\n{_USAGE}", file=sys.stderr, end="")
        return 2
    _launch.export_to_children(argv[: len(argv) - len(rest)])
    _launch.add_hook()
    if rest[0] == "-m":
        sys.argv = [rest[1]] + rest[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path.insert(0, os.path.dirname(os.path.abspath(rest[0])))
        runpy.run_path(rest[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
