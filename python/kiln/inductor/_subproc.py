"""KilnSubprocPool: PyTorch Inductor's SubprocPool (torch/_inductor/compile_worker/subproc_pool.py)
on a Kiln pool, with SubprocPool's interface and behaviour.

What SubprocPool does with a sidecar process that forks a ProcessPoolExecutor, this does with a
kiln.Executor whose warm Python tools imported torch._inductor once: each job is the pickler's
bytes of a function, run by Inductor's own SubprocMain.do_job in a worker, so that a job's
exception arrives as Inductor's SubprocException holding the remote traceback (which names the
exception's type). Where SubprocPool's users complain, it does better: a crashed worker costs
its job only (kiln.WorkerCrashed, a BrokenProcessPool) and the pool serves on without being
recreated; a job may time out; shutdown never waits for a hung job; no worker outlives this
process, even when it is killed (the supervisor watches its parent).
"""

import concurrent.futures
import functools
import logging
import os
import threading

log = logging.getLogger("kiln.inductor")

# What the workers import once, before their first job (the zygote's preload when there is one).
PRELOAD = ("torch._inductor.compile_worker.subproc_pool",)

# Seconds a worker may take to be ready (kiln.Executor's start_timeout): see __init__.
_START_TIMEOUT = 300.0

# Variables the workers must not inherit: they would make a worker install Kiln in itself.
_PRIVATE_ENV = ("KILN_INDUCTOR",)


def worker_initializer():
    """Run once in each worker: marks it as a compile subprocess, as Inductor's own initializer
    does (without its parent-watching thread, which Kiln's supervisor makes needless and which
    would kill a worker whose parent is kiln-worker rather than the caller)."""
    from torch._inductor.compile_worker import utils

    utils._IN_TOPLEVEL_PROCESS = False


def worker_env(env=None):
    """The environment of the pool's workers: the caller's, as SubprocPool gives its sidecar,
    without kiln.inductor's own variables and with TORCH_WARM_POOL=0 (no pool inside a worker)."""
    env = dict(os.environ if env is None else env)
    for name in _PRIVATE_ENV:
        env.pop(name, None)
    env["TORCH_WARM_POOL"] = "0"
    return env


def _log_file():
    """Where the workers' output goes, as SubprocPool decides it: with
    config.worker_suppress_logging (the default), only Kiln's errors reach stderr; otherwise
    TORCHINDUCTOR_WORKER_LOGPATH (config.torchinductor_worker_logpath) or Inductor's default
    log path receives the workers' output."""
    from torch._inductor import config

    if config.worker_suppress_logging:
        return None
    return config.torchinductor_worker_logpath or config.get_worker_log_path() or None


class KilnSubprocPool:
    """SubprocPool(nprocs, pickler=None, kind=SubprocKind.FORK, quiesce=False) on Kiln.

    submit(fn, *args, **kwargs) returns a concurrent.futures.Future already running, as
    SubprocPool's; quiesce() stops the workers until the next job or wakeup(); shutdown()
    cancels what is left. quiesce=True quiesces the pool after config.quiesce_async_compile_time
    seconds without a job. Kiln's own keywords: job_timeout (seconds per job), idle_quiesce
    (seconds, overrides the quiesce=True default), and the rest of kiln.Executor's (supervisor,
    max_worker_rss_mb, log_file, ...).
    """

    def __init__(self, nprocs, pickler=None, kind=None, quiesce=False, *, job_timeout=None,
                 idle_quiesce=None, **executor_options):
        import kiln
        from torch._inductor import config
        from torch._inductor.compile_worker.subproc_pool import SubprocKind, SubprocPickler

        self.pickler = pickler or SubprocPickler()
        self.kind = kind or SubprocKind.FORK  # accepted; Kiln's workers are never forked from us
        self.nprocs = nprocs
        if quiesce and idle_quiesce is None:
            idle_quiesce = config.quiesce_async_compile_time
        for name in ("socket", "trace"):  # the compiler pool's (install()), not this pool's
            executor_options.pop(name, None)
        executor_options.setdefault("log_file", _log_file())
        # A worker is ready once its tool is, and its tool once torch._inductor is imported (in
        # the zygote, or by the tool itself when there is none): seconds alone, a minute or more
        # on a loaded machine, which Kiln's default of 30 s would count as a failed start.
        # SubprocPool waits for its sidecar without a limit.
        executor_options.setdefault("start_timeout", _START_TIMEOUT)
        self.log_path = executor_options["log_file"]
        self._executor = kiln.Executor(
            max_workers=nprocs,
            initializer=worker_initializer,
            preload=PRELOAD,
            job_timeout=job_timeout,
            idle_quiesce=idle_quiesce or None,
            env=worker_env(executor_options.pop("env", None)),
            **executor_options,
        )
        self._lock = threading.Lock()
        self._pending = set()
        self.running = True

    @property
    def kiln_pool(self):
        """The kiln.Pool underneath (stats(), the supervisor's pid)."""
        return self._executor.pool

    def submit(self, job_fn, *args, **kwargs):
        from torch._inductor.compile_worker.subproc_pool import SubprocMain

        if args or kwargs:
            job_fn = functools.partial(job_fn, *args, **kwargs)
        job_data = self.pickler.dumps(job_fn)
        future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            if not self.running:
                raise RuntimeError("Attempting to use a closed pool")
            inner = self._executor.submit(SubprocMain.do_job, self.pickler, job_data)
            self._pending.add(future)
        inner.add_done_callback(functools.partial(self._settle, future))
        return future

    def _settle(self, future, inner):
        from torch._inductor.compile_worker.subproc_pool import (
            SubprocException,
            _SubprocExceptionInfo,
        )

        with self._lock:
            self._pending.discard(future)
        if future.done():
            return  # settled by shutdown()
        try:
            result = self.pickler.loads(inner.result())
        except BaseException as e:  # noqa: BLE001 - the job's failure, or the unpickling's
            result = e
        try:
            if isinstance(result, _SubprocExceptionInfo):
                future.set_exception(SubprocException(result.details))
            elif isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass  # shutdown() got there first

    def quiesce(self):
        self._check_open()
        self._executor.pool.quiesce()

    def wakeup(self):
        self._check_open()
        self._executor.pool.wakeup()

    def _check_open(self):
        if not self.running:
            raise RuntimeError("Attempting to use a closed pool")

    def shutdown(self):
        """Stops the pool at once: jobs still open fail with RuntimeError("SubprocPool closed"),
        as SubprocPool's do; running ones are stopped rather than waited for."""
        with self._lock:
            if not self.running:
                return
            self.running = False
            pending, self._pending = self._pending, set()
        for future in pending:
            try:
                future.set_exception(RuntimeError("SubprocPool closed"))
            except concurrent.futures.InvalidStateError:
                pass
        try:
            self._executor.shutdown(wait=True, cancel_futures=True)
        except Exception:  # noqa: BLE001 - as SubprocPool: shutting down never raises
            log.warning("ignored error in pool shutdown", exc_info=True)
