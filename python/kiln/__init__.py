"""Kiln's Python client: run compile jobs on a pool of warm, supervised worker processes.

    import kiln

    with kiln.Executor(max_workers=4, preload=["numpy"]) as ex:   # ProcessPoolExecutor's API
        print(list(ex.map(pow, [2, 3], [10, 10])))                # [1024, 59049]

    with kiln.Pool(workers=4) as pool:
        fut = pool.exec(["cc", "-c", "a.c", "-o", "a.o"], cwd="/src")
        result = fut.result()          # kiln.ExecResult: exit_code, stdout, stderr, ...
        echo = pool.submit("echo", {"any": "msgpack value"}).result()

Failures raise kiln.JobError with the protocol's `code`, `message` and `detail`. kiln.connect(path)
talks to a shared daemon (`kiln-supervisor --listen PATH`) instead of starting a supervisor.
"""

import importlib

# name -> the module that defines it, imported on first use (PEP 562): `python3 -m kiln.tool`,
# the worker side, then imports only what it needs, not concurrent.futures and logging (70 ms).
_EXPORTS = {
    "ExecResult": "_pool",
    "Executor": "_executor",
    "JobError": "_errors",
    "JobStatus": "_futures",
    "JobTimeout": "_errors",
    "KilnError": "_errors",
    "Pool": "_pool",
    "PoolClosedError": "_errors",
    "PoolUnavailable": "_errors",
    "WorkerCrashed": "_errors",
    "ProtocolError": "_wire",
    "cancel": "_futures",
    "connect": "_pool",
    "key_id": "_wire",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kiln' has no attribute {name!r}")
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
