"""Kiln's Python client: run compile jobs on a pool of warm, supervised worker processes.

    import kiln

    with kiln.Pool(workers=4) as pool:
        fut = pool.exec(["cc", "-c", "a.c", "-o", "a.o"], cwd="/src")
        result = fut.result()          # kiln.ExecResult: exit_code, stdout, stderr, ...
        echo = pool.submit("echo", {"any": "msgpack value"}).result()

Failures raise kiln.JobError with the protocol's `code`, `message` and `detail`. kiln.connect(path)
talks to a shared daemon (`kiln-supervisor --listen PATH`) instead of starting a supervisor.
"""

from ._pool import (
    ExecResult,
    JobError,
    KilnError,
    Pool,
    PoolClosedError,
    connect,
)
from ._wire import ProtocolError, key_id

__all__ = [
    "ExecResult",
    "JobError",
    "KilnError",
    "Pool",
    "PoolClosedError",
    "ProtocolError",
    "connect",
    "key_id",
]
