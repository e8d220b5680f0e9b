"""kiln.Pool, the public API of a pool: a kiln-supervisor of our own (pipe pair) or a connection
to a daemon (socket).

Every public call may be made from any thread. Each submit gets exactly one outcome: its result,
its JobError, or (if the supervisor goes away) a JobError saying so. The parts are modules of
their own, each imported only by those after it: _errors (the errors), _futures (a job's future,
a map's results), _supervisor (finding, starting and stopping kiln-supervisor, or reaching a
daemon), _link (the link's writer and reader thread, owner of the open jobs), and this one.
"""

import concurrent.futures
import dataclasses
import itertools
import math
import os
import threading

from . import _link, _supervisor, _wire
from ._errors import KilnError, PoolClosedError
from ._futures import _JobFuture, _MapResults

# Public names defined in the modules above, importable from here as before they were split out
# (kiln exports them from where they are defined).
from ._errors import JobError, JobTimeout, PoolUnavailable, WorkerCrashed, job_error  # noqa: F401
from ._futures import JobStatus, cancel  # noqa: F401


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """What an exec job's command did. A command that exits non-zero is still a result: the
    compile failed, the job did not."""

    exit_code: int  # -1 when a signal killed it
    signal: int  # 0 if none
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    wall_us: int
    user_us: int
    sys_us: int
    max_rss_kb: int

    @property
    def returncode(self):
        """subprocess's convention: the exit code, or -N when signal N killed the command."""
        return -self.signal if self.signal else self.exit_code

    @classmethod
    def from_value(cls, value):
        return cls(**{f.name: value[f.name] for f in dataclasses.fields(cls)})


def _timeout_ms(timeout):
    """Seconds (as the rest of Python counts them) to the protocol's whole milliseconds."""
    if timeout is None:
        return None
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    return max(1, math.ceil(timeout * 1000))


class Pool:
    """A pool of warm kiln-worker processes behind one kiln-supervisor.

    Pool(workers=4, job_timeout_ms=60000, log_file="kiln.log") starts a supervisor of our own;
    every other keyword becomes one of its options (see `kiln-supervisor --help`). tools={NAME:
    COMMAND} gives every worker a warm tool (a command line, or a list of arguments) that runs
    the jobs of kind NAME. zygote=True (the default) warms each Python tool (`-m kiln.tool`) up
    once per pool and forks every worker's process of it from there (docs/protocol.md "Zygote
    link"); False starts each from scratch; a collection of tool names picks the tools, any
    tool that speaks the zygote link. kiln.connect() makes a Pool that talks to a shared daemon instead.

    As a context manager it finishes the jobs already submitted on a normal exit and cancels them
    when the block raises.
    """

    def __init__(
        self,
        workers=None,
        *,
        supervisor=None,
        key=None,
        stderr=None,
        start_timeout=30.0,
        tools=None,
        zygote=True,
        env=None,
        **options,
    ):
        max_frame = int(options.get("max_frame") or _wire.DEFAULT_MAX_FRAME)
        argv = _supervisor.command(supervisor, tools, zygote, {"workers": workers, **options})
        env = dict(os.environ if env is None else env)
        if key is not None:
            env["KILN_KEY"] = _wire.encode_key(key)
        proc, read_fd, write_fd = _supervisor.start(argv, env, stderr)
        self._setup(_link.Link(read_fd, write_fd, None, max_frame), proc)
        self._await_hello(start_timeout, key)

    @classmethod
    def _connected(cls, path, key, timeout):
        self = cls.__new__(cls)
        sock = _supervisor.connect(path, timeout)
        self._setup(_link.Link(sock.fileno(), sock.fileno(), sock, _wire.DEFAULT_MAX_FRAME), None)
        self._await_hello(timeout, key)
        return self

    def _setup(self, link, proc):
        self._link = link
        self._proc = proc  # a supervisor of our own; None for a daemon
        self._shutdown_lock = threading.Lock()

    def _await_hello(self, timeout, key):
        hello = self._link.wait_hello(timeout)
        if hello is None:
            why = self._link.closed or f"no hello within {timeout} s"
            status = _supervisor.stop(self._proc, kill=True)
            self._link.hangup()
            if status is not None:
                why = f"kiln-supervisor exited with status {status} before it was ready ({why})"
            raise KilnError(why)
        if key is not None and hello["key_id"] != _wire.key_id(key):
            self.close()
            raise KilnError(
                f"the supervisor's key_id {hello['key_id']} is not that of the given key "
                f"({_wire.key_id(key)})"
            )

    # -- the public calls -------------------------------------------------------------------

    @property
    def hello(self):
        """The supervisor's hello: pid, workers, kinds, key_id, server."""
        return dict(self._link.hello)

    @property
    def pid(self):
        """The supervisor's pid."""
        return self._link.hello["pid"]

    def submit(self, kind, payload=None, *, timeout=None, priority=None, on_status=None,
               on_start=None):
        """Runs one job; a Future of its value. Future.cancel() cancels the job itself, queued
        or running. timeout is in seconds of run time on a worker (not time queued).
        on_status(JobStatus), if given, is called on the pool's reader thread each status
        interval the job still runs; on_start(worker_pid), if given, once a worker starts the
        job (the supervisor's `started`; a job sent ahead to a worker has not started until that
        worker takes it). Neither may block; an exception in one is logged."""
        return self._submit(kind, payload, _timeout_ms(timeout), priority, None,
                            on_status=on_status, on_start=on_start)

    def submit_many(self, kind, payloads, *, timeout=None, priority=None):
        """Runs one job of `kind` per payload; their Futures, in order. The same as a submit()
        per payload, but the submits go to the supervisor a pipe-full per write: for bursts of
        small jobs. If a payload cannot be encoded, none of them is submitted."""
        return self._submit_all(kind, payloads, _timeout_ms(timeout), priority, None)

    def map(self, kind, payloads, *, timeout=None, priority=None):
        """Runs one job of `kind` per payload, submitted at once as submit_many() does; an
        iterator of their values in payload order, as ProcessPoolExecutor.map gives them: a job
        that failed raises its JobError when its turn comes, and once iteration has begun, the
        jobs not yet reached are cancelled when the iterator is closed or dropped. timeout is
        each job's run-time limit in seconds, as for submit(). No Future is made per job: for
        bursts of small jobs."""
        results = None

        def entries_for(first_id, count):
            nonlocal results
            results = _MapResults(self._link, first_id, count)
            return itertools.repeat(results, count)

        self._link.send_submits(kind, payloads, _timeout_ms(timeout), priority, entries_for)
        return iter(()) if results is None else results.in_order()

    def exec(
        self,
        argv,
        cwd=None,
        env=None,
        stdin=None,
        timeout=None,
        *,
        clear_env=False,
        max_output_bytes=None,
        priority=None,
        on_status=None,
        on_start=None,
    ):
        """Runs one command on a warm worker; a Future of its ExecResult. It runs in `cwd`,
        default this process's current directory (not the supervisor's: a daemon's is "/").
        env is added to the worker's environment (or is the whole of it with clear_env=True).
        on_status and on_start as for submit()."""
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a sequence of arguments, not one string")
        payload = {"argv": [os.fspath(a) for a in argv]}
        if not payload["argv"]:
            raise ValueError("argv must hold at least the command")
        payload["cwd"] = os.fspath(cwd) if cwd is not None else os.getcwd()
        if env is not None:
            payload["env"] = {str(k): str(v) for k, v in env.items()}
        if clear_env:
            payload["clear_env"] = True
        if stdin is not None:
            payload["stdin"] = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        if max_output_bytes is not None:
            payload["max_output_bytes"] = int(max_output_bytes)
        return self._submit(
            "exec", payload, _timeout_ms(timeout), priority, ExecResult.from_value,
            on_status=on_status, on_start=on_start,
        )

    def quiesce(self):
        """Lets running jobs finish, then stops every worker; the next submit or wakeup() starts
        them again. For idle phases of a build: workers hold no memory while stopped."""
        self._link.send({"type": "quiesce"})

    def wakeup(self):
        """Starts the pool to full size now, so the next jobs find warm workers."""
        self._link.send({"type": "wakeup"})

    def stats(self, timeout=30.0):
        """The supervisor's counters (docs/protocol.md, `stats`) as a dict."""
        waiter = self._link.ask_stats()
        try:
            stats = waiter.result(timeout)
        except concurrent.futures.TimeoutError:
            raise KilnError(f"no stats within {timeout} s") from None
        stats.pop("type", None)
        return stats

    def shutdown(self, drain=False, timeout=None):
        """Stops the supervisor. drain=True finishes queued and running jobs first; otherwise
        they end with JobError code "shutdown". Waits for the supervisor to exit and returns its
        exit status (None for a daemon reached with kiln.connect(), which this stops too).
        Calling it again returns at once."""
        with self._shutdown_lock:
            try:
                self._link.send({"type": "shutdown", "drain": bool(drain)})
            except PoolClosedError:
                pass
            self._link.join(timeout)
            if self._proc is None:
                self._link.hangup()  # a daemon that did not finish in time: stop listening to it
                return None
            status = _supervisor.stop(self._proc, kill=False, timeout=timeout)
            self._link.hangup()
            return status

    def close(self, wait=False):
        """Done with the pool. A supervisor of our own is shut down (draining if wait=True); a
        daemon is left serving and only this connection ends (after our open jobs finish if
        wait=True; otherwise they are cancelled)."""
        if self._proc is not None:
            self.shutdown(drain=wait)
            return
        if wait:
            for job in self._link.open_jobs():
                job.wait_done()
        with self._shutdown_lock:
            self._link.close("the connection was closed", "cancelled")
            self._link.hangup()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(wait=exc_type is None)

    # -- internals --------------------------------------------------------------------------

    def _submit(self, kind, payload, timeout_ms, priority, convert, convert_error=None,
                on_status=None, on_start=None, strict=False):
        """convert(value) is the future's result; convert_error(error map) the exception it
        raises (default: job_error); on_status(JobStatus) hears the job's status messages,
        on_start(worker_pid) its start; a strict future is RUNNING once its job has started
        (Executor's: see _JobFuture)."""
        (future,) = self._submit_all(
            kind, (payload,), timeout_ms, priority, convert, convert_error, on_status, on_start,
            strict,
        )
        return future

    def _submit_all(self, kind, payloads, timeout_ms, priority, convert, convert_error=None,
                    on_status=None, on_start=None, strict=False):
        """One future per payload, in order, their submits written together."""
        futures = []

        def entries_for(first_id, count):
            for job_id in range(first_id, first_id + count):
                future = _JobFuture(self._link, convert, convert_error, on_status, on_start,
                                    strict)
                future.job_id = job_id
                futures.append(future)
            return futures

        notify_started = strict or on_start is not None
        self._link.send_submits(kind, payloads, timeout_ms, priority, entries_for, notify_started)
        return futures

    def _cancel_not_started(self):
        """Cancels the open jobs that no worker has started, as their futures' cancel() does:
        Executor.shutdown(cancel_futures=True). Only a strict future (Executor's) hears its
        job's start; a Pool's own futures and a map's jobs are left as they are."""
        for job in self._link.open_jobs():
            if isinstance(job, _JobFuture) and job._strict:
                job.cancel()  # False, and nothing sent, for a job already started


def connect(path, *, key=None, timeout=30.0):
    """A Pool that talks to a daemon serving `path` (kiln-supervisor --listen PATH). close()
    leaves the daemon serving; shutdown() stops it."""
    return Pool._connected(path, key, timeout)
