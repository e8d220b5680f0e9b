"""kiln.Executor: a concurrent.futures.Executor on a Kiln pool whose workers each keep a warm
Python tool (`python3 -m kiln.tool`). Code written for ProcessPoolExecutor switches by changing
one name, and gains what that one lacks: a crash fails only its own job, a job can time out and
be cancelled while it runs, nothing outlives the caller.
"""

import concurrent.futures
import concurrent.futures.process
import functools
import itertools
import os
import pickle
import shutil
import sys
import tempfile
import threading

from . import _calls, _errors, _pool

_KIND = "python"


class _RemoteTraceback(Exception):
    """The traceback of the call in the worker, as the __cause__ of what it raised (as
    ProcessPoolExecutor does it)."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


def _value(data):
    return pickle.loads(data)


def _raise_again(error):
    """The exception a job's error becomes: what fn raised, as it was, with the remote
    traceback as its cause; for Kiln's own codes, the kiln.JobError subclass of that code."""
    exc = _errors.job_error(error)
    data = error.get("data")
    if error["code"] != "job_failed" or data is None:
        return exc
    try:
        raised = pickle.loads(data)
    except Exception:  # noqa: BLE001 - a class the client cannot import: keep the JobError
        return exc
    if not isinstance(raised, BaseException):
        return exc
    raised.__cause__ = _RemoteTraceback('\n"""\n' + (error.get("detail") or "") + '"""')
    return raised


def _chunks(chunksize, iterables):
    it = zip(*iterables)
    while True:
        chunk = tuple(itertools.islice(it, chunksize))
        if not chunk:
            return
        yield chunk


def _package_dir():
    """The directory that holds this kiln package, for the tool's interpreter to import it."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# What the tool's interpreter runs first: the caller's sys.path (then Kiln's own directory, if
# the caller's lacks it) ahead of the interpreter's own entries, then kiln.tool.
_BOOTSTRAP = (
    "import sys; sys.path[:0] = {path!r}; sys.dont_write_bytecode = {no_bytecode!r}; "
    "from kiln.tool import main; sys.exit(main())"
)


def _tool_command(python, preload=(), initializer=None):
    """The command line of the Python tool, isolated from where and how the pool is started.

    `python -m kiln.tool` would put the working directory first on sys.path and take PYTHONPATH,
    PYTHONSTARTUP and the rest of PYTHON* from the environment: a msgpack.py or sitecustomize.py
    planted in a shared directory a build runs in would run as the pool's user, in the tool,
    beside KILN_KEY. Isolated mode (-I, on every Python 3: no PYTHON* variable, no user
    site-packages, neither the working directory nor a script's on sys.path) runs none of it;
    the caller's sys.path and Kiln's location are given in the command itself."""
    path = [entry or os.getcwd() for entry in sys.path if isinstance(entry, str)]
    if _package_dir() not in path:
        path.append(_package_dir())
    bootstrap = _BOOTSTRAP.format(path=path, no_bytecode=bool(sys.dont_write_bytecode))
    command = [python or sys.executable, "-I", "-c", bootstrap]
    for module in preload:
        command += ["--preload", str(module)]
    if initializer is not None:
        command += ["--initializer", initializer]
    return command


class _Submitter:
    """Executor.with_options(...): submit and map with a per-job timeout and priority."""

    def __init__(self, executor, timeout, priority):
        self._executor = executor
        self._timeout_ms = _pool._timeout_ms(timeout)
        self._priority = priority

    def submit(self, fn, /, *args, **kwargs):
        return self._executor._submit(fn, args, kwargs, self._timeout_ms, self._priority)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        return self._executor._map(self.submit, fn, iterables, timeout, chunksize)


def _checked_arguments(max_workers, initializer, max_tasks_per_child):
    """max_workers (the number of CPUs when None), once ProcessPoolExecutor's checks of these
    arguments pass; they raise its errors."""
    if max_workers is None:
        max_workers = os.cpu_count() or 1
    if max_workers <= 0:
        raise ValueError("max_workers must be greater than 0")
    if initializer is not None and not callable(initializer):
        raise TypeError("initializer must be a callable")
    if max_tasks_per_child is not None:
        if not isinstance(max_tasks_per_child, int):
            raise TypeError("max_tasks_per_child must be an integer")
        if max_tasks_per_child <= 0:
            raise ValueError("max_tasks_per_child must be >= 1")
    return max_workers


class Executor(concurrent.futures.Executor):
    """A concurrent.futures.Executor whose workers are Kiln's, each with a warm interpreter.

    Arguments as ProcessPoolExecutor's: max_workers (default: the number of CPUs), mp_context
    (accepted and ignored: workers are never forked from the caller), initializer and initargs
    (called once before the workers serve, in the zygote their interpreters are forked from, so
    that each starts with its effects; with zygote=False, in each worker; if it raises, the pool
    cannot start and every job raises kiln.PoolUnavailable with its traceback),
    max_tasks_per_child. Then Kiln's own: preload (modules imported before the first job, once
    per pool), python
    (the interpreter; default the caller's, with the caller's sys.path), job_timeout (seconds of
    run time per job), max_worker_rss_mb and idle_quiesce (seconds without jobs after which the
    workers stop until the next job), supervisor (the kiln-supervisor binary), log_file (the
    supervisor's log, with what the workers print; default: errors only, on stderr), env (the workers' environment; the
    interpreter, started isolated, takes no PYTHON* variable from it), zygote (True, the default:
    the preload and initializer run once per pool, in a zygote, and every worker's interpreter is
    forked from it; False: each worker's interpreter starts from scratch), start_timeout
    (seconds a worker may take to be ready, its interpreter's preload included, before it is a
    failed start; default the supervisor's, 30 s: give more for a preload as large as torch on a
    loaded machine).

    Functions, lambdas and closures defined in __main__ travel by value (cloudpickle). What fn
    raises, result() raises again with its own type and args, the remote traceback as its
    __cause__. A worker that crashes fails only its job, with kiln.WorkerCrashed (also a
    BrokenProcessPool), and the executor serves on; a job past its timeout raises
    kiln.JobTimeout (also a TimeoutError).

    Futures keep concurrent.futures' contract: a job's future is running() once a worker has
    started it (a job waiting in the queue, or sent ahead to a busy worker, has not), and
    Future.cancel() cancels only a job that has not started: it returns False for a running
    one. (A job a worker takes just as it is cancelled, before the client hears that it started,
    is stopped.) kiln.cancel(future) stops a running job too (its worker is replaced) and its
    result() then raises CancelledError.
    """

    def __init__(
        self,
        max_workers=None,
        mp_context=None,
        initializer=None,
        initargs=(),
        max_tasks_per_child=None,
        *,
        preload=(),
        python=sys.executable,
        job_timeout=None,
        max_worker_rss_mb=None,
        idle_quiesce=None,
        supervisor=None,
        log_file=None,
        env=None,
        zygote=True,
        start_timeout=None,
    ):
        del mp_context  # see the docstring
        max_workers = _checked_arguments(max_workers, initializer, max_tasks_per_child)
        self._shutdown_lock = threading.Lock()
        self._shutdown = False
        self._private_dir = None
        initializer_path = None
        if initializer is not None:
            self._private_dir = tempfile.mkdtemp(prefix="kiln-executor-")  # 0700, ours alone
            initializer_path = os.path.join(self._private_dir, "initializer.pickle")
            with open(initializer_path, "wb") as f:
                f.write(_calls.dumps_by_value((initializer, tuple(initargs))))
        command = _tool_command(python, preload, initializer_path)
        options = {
            "job_timeout_ms": _pool._timeout_ms(job_timeout),
            "max_jobs_per_worker": max_tasks_per_child,
            "max_worker_rss_mb": max_worker_rss_mb,
            "idle_quiesce_ms": _pool._timeout_ms(idle_quiesce),
            "start_timeout_ms": _pool._timeout_ms(start_timeout),
            "log_file": log_file,
            # A log file asked for is the pool's whole story: what the jobs print too, which the
            # supervisor logs at debug (a shared daemon's log would drown in it at info).
            "log_level": "debug" if log_file else "error",
        }
        try:
            self._pool = _pool.Pool(
                max_workers,
                supervisor=supervisor,
                tools={_KIND: command},
                zygote=[_KIND] if zygote else False,
                env=env,
                **options,
            )
        except BaseException:
            self._remove_private_dir()
            raise

    # -- concurrent.futures.Executor --------------------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        return self._submit(fn, args, kwargs, None, None)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """As Executor.map; with chunksize > 1, each chunk of arguments travels as one job."""
        return self._map(self.submit, fn, iterables, timeout, chunksize)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """As ProcessPoolExecutor.shutdown; cancel_futures=True cancels the jobs that have not
        started, and the running ones finish (kiln.cancel() stops one). With wait=False the jobs
        left finish in the background and the pool stops after them."""
        with self._shutdown_lock:
            if self._shutdown:
                return
            self._shutdown = True
        if cancel_futures:
            self._pool._cancel_not_started()
        if wait:
            self._stop()
        else:
            threading.Thread(target=self._stop, name="kiln-executor-shutdown", daemon=True).start()

    # -- Kiln's own -------------------------------------------------------------------------

    def with_options(self, *, timeout=None, priority=None):
        """submit() and map() with a run-time limit in seconds and a priority (higher first)
        for each job: executor.with_options(timeout=5).submit(fn, x). Kept apart from submit()
        so that no option can collide with a keyword argument of fn."""
        return _Submitter(self, timeout, priority)

    @property
    def pool(self):
        """The kiln.Pool underneath (stats(), quiesce(), wakeup())."""
        return self._pool

    # -- internals --------------------------------------------------------------------------

    def _submit(self, fn, args, kwargs, timeout_ms, priority):
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
        payload = _calls.dumps_call(fn, args, kwargs)
        return self._pool._submit(
            _KIND, payload, timeout_ms, priority, _value, _raise_again, strict=True
        )

    def _map(self, submit, fn, iterables, timeout, chunksize):
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            return concurrent.futures.Executor.map(_Mapper(submit), fn, *iterables, timeout=timeout)
        results = concurrent.futures.Executor.map(
            _Mapper(submit),
            functools.partial(_calls.process_chunk, fn),
            _chunks(chunksize, iterables),
            timeout=timeout,
        )
        return itertools.chain.from_iterable(results)

    def _stop(self):
        try:
            self._pool.shutdown(drain=True)
        finally:
            self._remove_private_dir()

    def _remove_private_dir(self):
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None


class _Mapper:
    """concurrent.futures.Executor.map, run with a chosen submit."""

    def __init__(self, submit):
        self.submit = submit
