"""kiln.Pool: a kiln-supervisor of our own (pipe pair) or a connection to a daemon (socket).

One reader thread per pool reads the supervisor's frames and settles futures; every public call
may be made from any thread. Each submit gets exactly one outcome: its result, its JobError, or
(if the supervisor goes away) a JobError saying so.
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import math
import os
import socket
import threading

from . import _supervisor, _wire
from ._errors import JobError, KilnError, PoolClosedError
from ._futures import _JobFuture, _MapResults

# Public names defined in the modules above, importable from here as before they were split out
# (kiln exports them from where they are defined).
from ._errors import JobTimeout, PoolUnavailable, WorkerCrashed, job_error  # noqa: F401
from ._futures import JobStatus, cancel  # noqa: F401

log = logging.getLogger("kiln")

_WRITE_CHUNK = 64 * 1024  # submit_many's writes: a pipe's whole buffer at a time


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
        self._max_frame = int(options.get("max_frame") or _wire.DEFAULT_MAX_FRAME)
        argv = _supervisor.command(supervisor, tools, zygote, {"workers": workers, **options})
        env = dict(os.environ if env is None else env)
        if key is not None:
            env["KILN_KEY"] = _wire.encode_key(key)
        proc, read_fd, write_fd = _supervisor.start(argv, env, stderr)
        self._setup(read_fd, write_fd, proc=proc, sock=None)
        self._await_hello(start_timeout, key)

    @classmethod
    def _connected(cls, path, key, timeout):
        self = cls.__new__(cls)
        self._max_frame = _wire.DEFAULT_MAX_FRAME
        sock = _supervisor.connect(path, timeout)
        self._setup(sock.fileno(), sock.fileno(), proc=None, sock=sock)
        self._await_hello(timeout, key)
        return self

    def _setup(self, read_fd, write_fd, proc, sock):
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._proc = proc
        self._sock = sock
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # pending, stats waiters, closed
        self._write_lock = threading.Lock()  # whole frames in order
        self._pending = {}  # id -> its _JobFuture, or the _MapResults of its map
        self._stats_waiters = collections.deque()
        self._closed = None  # why nothing more can be submitted
        self._gone_code = "shutdown"  # the code open jobs end with when the link ends
        self._hello = None
        self._hello_event = threading.Event()
        self._link_error = None
        self._shutdown_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_loop, name="kiln-pool-reader", daemon=True)
        self._reader.start()

    def _await_hello(self, timeout, key):
        if not self._hello_event.wait(timeout) or self._hello is None:
            why = self._closed or f"no hello within {timeout} s"
            status = _supervisor.stop(self._proc, kill=True)
            self._hangup()
            if status is not None:
                why = f"kiln-supervisor exited with status {status} before it was ready ({why})"
            raise KilnError(why)
        if key is not None and self._hello["key_id"] != _wire.key_id(key):
            self.close()
            raise KilnError(
                f"the supervisor's key_id {self._hello['key_id']} is not that of the given key "
                f"({_wire.key_id(key)})"
            )

    # -- the public calls -------------------------------------------------------------------

    @property
    def hello(self):
        """The supervisor's hello: pid, workers, kinds, key_id, server."""
        return dict(self._hello)

    @property
    def pid(self):
        """The supervisor's pid."""
        return self._hello["pid"]

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

        def register(first_id, count):
            nonlocal results
            results = _MapResults(self, first_id, count)
            for job_id in range(first_id, first_id + count):
                self._pending[job_id] = results

        self._send_submits(kind, payloads, _timeout_ms(timeout), priority, register)
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
        self._send({"type": "quiesce"})

    def wakeup(self):
        """Starts the pool to full size now, so the next jobs find warm workers."""
        self._send({"type": "wakeup"})

    def stats(self, timeout=30.0):
        """The supervisor's counters (docs/protocol.md, `stats`) as a dict."""
        waiter = concurrent.futures.Future()
        with self._write_lock:
            with self._lock:
                if self._closed:
                    raise PoolClosedError(self._closed)
                self._stats_waiters.append(waiter)
            self._write_frame(_wire.encode({"type": "stats"}))
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
                self._send({"type": "shutdown", "drain": bool(drain)})
            except PoolClosedError:
                pass
            self._reader.join(timeout)
            if self._proc is None:
                self._hangup()  # a daemon that did not finish in time: stop listening to it
                return None
            status = _supervisor.stop(self._proc, kill=False, timeout=timeout)
            self._hangup()
            return status

    def close(self, wait=False):
        """Done with the pool. A supervisor of our own is shut down (draining if wait=True); a
        daemon is left serving and only this connection ends (after our open jobs finish if
        wait=True; otherwise they are cancelled)."""
        if self._proc is not None:
            self.shutdown(drain=wait)
            return
        if wait:
            with self._lock:
                open_jobs = set(self._pending.values())
            for jobs in open_jobs:
                jobs.wait_done()
        with self._shutdown_lock:
            with self._lock:
                if self._closed is None:
                    self._closed = "the connection was closed"
                    self._gone_code = "cancelled"
            self._hangup()

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

        def register(first_id, count):
            for job_id in range(first_id, first_id + count):
                future = _JobFuture(self, convert, convert_error, on_status, on_start, strict)
                future.job_id = job_id
                futures.append(future)
                self._pending[job_id] = future

        notify_started = strict or on_start is not None
        self._send_submits(kind, payloads, timeout_ms, priority, register, notify_started)
        return futures

    def _send_submits(self, kind, payloads, timeout_ms, priority, register, notify_started=False):
        """Encodes a submit per payload (their ids consecutive), has register(first_id, count)
        enter them in _pending (pool lock held), and writes them together: a write per
        _WRITE_CHUNK bytes, not per job. Every payload is encoded before any job is registered
        or sent, so a payload that cannot be encoded (TypeError/ValueError) sends none of them.
        notify_started asks the supervisor for each job's `started` message."""
        message = {"type": "submit", "id": 0, "kind": str(kind), "payload": None}
        if timeout_ms is not None:
            message["timeout_ms"] = timeout_ms
        if priority is not None:
            message["priority"] = int(priority)
        if notify_started:
            message["notify_started"] = True
        frames = []
        with self._write_lock:  # the ids are taken under it: consecutive, in write order
            if self._closed:
                raise PoolClosedError(self._closed)
            first_id = None
            for payload in payloads:
                message["id"] = next(self._ids)
                first_id = message["id"] if first_id is None else first_id
                message["payload"] = payload
                frames.append(_wire.encode(message, self._max_frame))
            with self._lock:
                if self._closed:
                    raise PoolClosedError(self._closed)
                if frames:
                    register(first_id, len(frames))
            self._write_frames(frames)

    def _write_frames(self, frames):
        """Writes whole frames in order, joined into writes of about _WRITE_CHUNK bytes (write
        lock held)."""
        chunk, size = [], 0
        for frame in frames:
            chunk.append(frame)
            size += len(frame)
            if size >= _WRITE_CHUNK:
                self._write_frame(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self._write_frame(b"".join(chunk))  # one frame: join returns it, no copy

    def _cancel_not_started(self):
        """Cancels the open jobs that no worker has started, as their futures' cancel() does:
        Executor.shutdown(cancel_futures=True). Only a strict future (Executor's) hears its
        job's start; a Pool's own futures and a map's jobs are left as they are."""
        with self._lock:
            futures = [f for f in self._pending.values() if isinstance(f, _JobFuture) and f._strict]
        for future in futures:
            future.cancel()  # False, and nothing sent, for a job already started

    def _cancel(self, job_id):
        try:
            self._send({"type": "cancel", "id": job_id})
        except PoolClosedError:
            pass  # the link is gone: the job ended with it

    def _send(self, message):
        frame = _wire.encode(message, self._max_frame)
        with self._write_lock:
            with self._lock:
                if self._closed:
                    raise PoolClosedError(self._closed)
            self._write_frame(frame)

    def _write_frame(self, frame):
        """Writes a whole frame (write lock held). A broken link is left to the reader, which
        sees its end and settles every open job."""
        view = memoryview(frame)
        try:
            while view:
                view = view[os.write(self._write_fd, view):]
        except OSError as e:
            log.debug("writing to kiln-supervisor failed: %s", e)

    def _read_loop(self):
        reader = _wire.FrameReader(self._max_frame)
        why = "kiln-supervisor closed the link"
        try:
            while True:
                data = os.read(self._read_fd, 1 << 16)
                if not data:
                    if reader.pending:
                        why = "kiln-supervisor closed the link in the middle of a frame"
                    break
                for body in reader.feed(data):
                    self._dispatch(_wire.decode(body, _wire.FROM_SUPERVISOR))
        except _wire.ProtocolError as e:
            why = f"protocol error from kiln-supervisor: {e}"
            log.error("%s", why)
        except OSError as e:
            why = f"reading from kiln-supervisor failed: {e}"
        if self._link_error:
            why = self._link_error
        self._end(why)

    def _dispatch(self, m):
        kind = m["type"]
        if kind == "result":
            with self._lock:
                future = self._pending.pop(m["id"], None)
            if future is None:
                raise _wire.ProtocolError(f"result for id {m['id']}, which is not an open job")
            future.settle_result(m)
        elif kind == "hello":
            if self._hello is not None:
                raise _wire.ProtocolError("a second hello")
            if m["protocol"] != _wire.PROTOCOL_VERSION:
                raise _wire.ProtocolError(f"protocol version {m['protocol']}, expected 1")
            self._hello = m
            self._hello_event.set()
        elif kind == "stats":
            with self._lock:
                waiter = self._stats_waiters.popleft() if self._stats_waiters else None
            if waiter is None:
                raise _wire.ProtocolError("stats that nobody asked for")
            waiter.set_result(m)
        elif kind == "started":
            with self._lock:
                future = self._pending.get(m["id"])
            if future is not None:
                future.started(m["worker_pid"])
        elif kind == "status":
            with self._lock:
                future = self._pending.get(m["id"])
            if future is not None:
                future.status(m)
        elif kind == "error":
            self._link_error = f"kiln-supervisor ended the link: {m['code']}: {m['message']}"
            log.error("%s", self._link_error)
        # bye (the end follows) needs no action.

    def _end(self, why):
        """The link is gone: every open job and stats request learns it, once."""
        with self._lock:
            if self._closed is None:
                self._closed = why
            why = self._closed
            pending, self._pending = self._pending, {}
            waiters, self._stats_waiters = self._stats_waiters, collections.deque()
            code = self._gone_code
        for job_id, future in pending.items():
            future.settle_exception(job_id, JobError(code, why))
        for waiter in waiters:
            waiter.set_exception(PoolClosedError(why))
        self._hello_event.set()

    def _hangup(self):
        """Ends the link from our side, waits for the reader to finish with it, and closes our
        fds. For a supervisor of our own, call it once the process is gone (its exit ended the
        link already)."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already disconnected
        if threading.current_thread() is not self._reader:
            self._reader.join()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        elif self._read_fd >= 0:
            os.close(self._read_fd)
            os.close(self._write_fd)
        self._read_fd = self._write_fd = -1


def connect(path, *, key=None, timeout=30.0):
    """A Pool that talks to a daemon serving `path` (kiln-supervisor --listen PATH). close()
    leaves the daemon serving; shutdown() stops it."""
    return Pool._connected(path, key, timeout)
