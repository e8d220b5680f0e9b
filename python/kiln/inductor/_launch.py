"""Installing kiln.inductor without editing the program: the options of `python -m kiln.inductor`
and of the KILN_INDUCTOR variable, and the import hook that installs once Inductor is imported.

KILN_INDUCTOR holds the options as on the command line ("--workers 4 --job-timeout 300"; "1" or
"" for the defaults). A Python program sees it when the directory of _bootstrap/sitecustomize.py
is on its PYTHONPATH (`python -m kiln.inductor --print-pythonpath` gives it): that startup hook
does nothing until torch._inductor.async_compile is imported, then installs. `python -m
kiln.inductor` sets both for the program it runs and for every Python program that one starts.
"""

import importlib.util
import os
import shlex
import sys

ENV = "KILN_INDUCTOR"
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
_HOOKED_MODULE = "torch._inductor.async_compile"

# --option: (install() keyword, type)
OPTIONS = {
    "--workers": ("workers", int),
    "--job-timeout": ("job_timeout", float),
    "--idle-quiesce": ("idle_quiesce", float),
    "--log-file": ("log_file", str),
    "--supervisor": ("supervisor", str),
    "--max-worker-rss-mb": ("max_worker_rss_mb", int),
    "--socket": ("socket", str),
    "--trace": ("trace", str),
}


def parse_options(argv):
    """(install() keywords, the arguments after the options). Raises ValueError."""
    options = {}
    argv = list(argv)
    while argv and argv[0].startswith("--") and argv[0] != "--":
        name, eq, value = argv.pop(0).partition("=")
        if name not in OPTIONS:
            raise ValueError(f"unknown option {name}")
        if not eq:
            if not argv:
                raise ValueError(f"{name} needs a value")
            value = argv.pop(0)
        keyword, kind = OPTIONS[name]
        try:
            options[keyword] = kind(value)
        except ValueError:
            raise ValueError(f"{name}: not a {kind.__name__}: {value!r}") from None
    if argv and argv[0] == "--":
        argv.pop(0)
    return options, argv


def env_options(value):
    """install() keywords of a KILN_INDUCTOR value."""
    words = shlex.split(value)
    if words in ([], ["1"]):
        return {}
    options, rest = parse_options(words)
    if rest:
        raise ValueError(f"{ENV}: unexpected {' '.join(rest)!r} (options only)")
    return options


def install_from_env():
    from . import _install

    if not _install.installed():
        _install.install(**env_options(os.environ.get(ENV, "")))


class _InstallAfterLoading:
    """The loader of torch._inductor.async_compile, which installs once the module is loaded."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        install_from_env()

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Hook:
    """A sys.meta_path finder that finds nothing itself: it wraps the loader of the one module."""

    def find_spec(self, name, path=None, target=None):
        if name != _HOOKED_MODULE:
            return None
        remove_hook()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _InstallAfterLoading(spec.loader)
        return spec


_hook = _Hook()


def add_hook():
    """Installs kiln.inductor when Inductor's async_compile is imported (at once if it is)."""
    if _HOOKED_MODULE in sys.modules:
        install_from_env()
    elif _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)


def remove_hook():
    if _hook in sys.meta_path:
        sys.meta_path.remove(_hook)


def export_to_children(options_argv):
    """Sets KILN_INDUCTOR and PYTHONPATH so that Python programs started from here install too."""
    os.environ[ENV] = shlex.join(options_argv) or "1"
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for entry in (package_root, BOOTSTRAP_DIR):
        if entry not in paths:
            paths.insert(0, entry)
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
