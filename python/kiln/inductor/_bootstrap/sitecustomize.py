"""Startup hook of kiln.inductor (this directory on PYTHONPATH, KILN_INDUCTOR set): installs
kiln.inductor once torch._inductor.async_compile is imported, then runs the sitecustomize this
one shadows, if any. Costs nothing when KILN_INDUCTOR is unset."""

import importlib.machinery
import importlib.util
import os
import sys


def _run_shadowed_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)


if "KILN_INDUCTOR" in os.environ:
    from kiln.inductor import _launch

    _launch.add_hook()
_run_shadowed_sitecustomize()
