"""The errors this package raises, and job_error: the JobError of a result's `error` map.
Imports nothing of the package, so that every other module may import it."""

import concurrent.futures.process


class KilnError(Exception):
    """Base of the errors this package raises."""


class PoolClosedError(KilnError, RuntimeError):
    """The pool was shut down or its supervisor went away; nothing more can be submitted."""


class JobError(KilnError):
    """A job that ended without a value: `code` is one of docs/protocol.md's error codes
    (job_failed, spawn_failed, bad_payload, unknown_kind, worker_crashed, worker_protocol_error,
    timeout, cancelled, shutdown, overloaded, pool_unavailable); `detail` holds what more the
    supervisor said, a crashed worker's stack trace for worker_crashed; `data` holds the opaque
    bytes a tool attached (`error.data`: the Python tool's pickled exception), or None."""

    def __init__(self, code, message, detail=None, worker_pid=None, data=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.worker_pid = worker_pid
        self.data = data


class WorkerCrashed(JobError, concurrent.futures.process.BrokenProcessPool):
    """worker_crashed: the worker (or its tool) died while running this job, and only this job
    paid; `detail` holds its crash report (a Python tool's faulthandler traceback). Also a
    BrokenProcessPool, so that code written for ProcessPoolExecutor still catches it, though the
    pool is not broken: it serves on."""


class PoolUnavailable(JobError, concurrent.futures.process.BrokenProcessPool):
    """pool_unavailable: workers keep failing to start (a tool or initializer that fails);
    `detail` holds what the last one printed."""


class JobTimeout(JobError, TimeoutError):
    """timeout: the job ran past its run-time limit; its worker was stopped and replaced."""


_ERROR_CLASSES = {
    "worker_crashed": WorkerCrashed,
    "pool_unavailable": PoolUnavailable,
    "timeout": JobTimeout,
}


def job_error(error, worker_pid=None):
    """The JobError (or its subclass for the code) of a result's `error` map."""
    cls = _ERROR_CLASSES.get(error["code"], JobError)
    return cls(error["code"], error["message"], error.get("detail"), worker_pid, error.get("data"))

