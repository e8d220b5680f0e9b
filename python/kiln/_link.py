"""A pool's link to its kiln-supervisor (a pipe pair, or a daemon's socket): the writer of whole
frames, the reader thread that reads the supervisor's frames, and the open jobs they settle.

The link is the one owner of the open jobs: an entry per job id, its _JobFuture or the
_MapResults of its map, entered as its submit is written and taken out as its result is read or
the link ends. Every call may be made from any thread. When the link ends, every open job and
stats request learns it, once.
"""

import collections
import concurrent.futures
import itertools
import logging
import os
import socket
import threading

from . import _wire
from ._errors import JobError, PoolClosedError

log = logging.getLogger("kiln")

_WRITE_CHUNK = 64 * 1024  # submit_many's writes: a pipe's whole buffer at a time


class Link:
    """Reads `read_fd` and writes `write_fd` (both a socket's fd when `sock` is given, which
    the link then owns); frames at most `max_frame` bytes. Its reader starts at once."""

    def __init__(self, read_fd, write_fd, sock, max_frame):
        self._read_fd = read_fd
        self._write_fd = write_fd
        self._sock = sock
        self._max_frame = max_frame
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # open jobs, stats waiters, closed
        self._write_lock = threading.Lock()  # whole frames in order
        self._open = {}  # id -> its _JobFuture, or the _MapResults of its map
        self._stats_waiters = collections.deque()
        self._closed = None  # why nothing more can be sent
        self._gone_code = "shutdown"  # the code open jobs end with when the link ends
        self._hello = None
        self._hello_event = threading.Event()
        self._link_error = None
        self._reader = threading.Thread(target=self._read_loop, name="kiln-pool-reader",
                                        daemon=True)
        self._reader.start()

    @property
    def closed(self):
        """Why nothing more can be sent, or None while the link serves."""
        return self._closed

    @property
    def hello(self):
        """The supervisor's hello, or None until it has come."""
        return self._hello

    def wait_hello(self, timeout):
        """The supervisor's hello once it has come; None if it did not within `timeout` s, or
        the link ended first."""
        self._hello_event.wait(timeout)
        return self._hello

    def open_jobs(self):
        """The open jobs' entries, each once, in the order their submits were written."""
        with self._lock:
            return list(dict.fromkeys(self._open.values()))

    # -- the writer -------------------------------------------------------------------------

    def send(self, message):
        """Writes one message; PoolClosedError if nothing more can be sent."""
        frame = _wire.encode(message, self._max_frame)
        with self._write_lock:
            with self._lock:
                if self._closed:
                    raise PoolClosedError(self._closed)
            self._write_frame(frame)

    def cancel(self, job_id):
        """Asks the supervisor to cancel a job; nothing if the link is gone."""
        try:
            self.send({"type": "cancel", "id": job_id})
        except PoolClosedError:
            pass  # the link is gone: the job ended with it

    def ask_stats(self):
        """Sends a `stats` request; a Future of the supervisor's answer."""
        waiter = concurrent.futures.Future()
        with self._write_lock:
            with self._lock:
                if self._closed:
                    raise PoolClosedError(self._closed)
                self._stats_waiters.append(waiter)
            self._write_frame(_wire.encode({"type": "stats"}))
        return waiter

    def send_submits(self, kind, payloads, timeout_ms, priority, entries_for,
                     notify_started=False):
        """Encodes a submit per payload (their ids consecutive), enters the entries that
        entries_for(first_id, count) gives, one per job, among the open jobs (lock held), and
        writes them together: a write per _WRITE_CHUNK bytes, not per job. Every payload is
        encoded before any job is entered or sent, so a payload that cannot be encoded
        (TypeError/ValueError) sends none of them. notify_started asks the supervisor for each
        job's `started` message."""
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
                    ids = range(first_id, first_id + len(frames))
                    self._open.update(zip(ids, entries_for(first_id, len(frames))))
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

    def _write_frame(self, frame):
        """Writes a whole frame (write lock held). A broken link is left to the reader, which
        sees its end and settles every open job."""
        view = memoryview(frame)
        try:
            while view:
                view = view[os.write(self._write_fd, view):]
        except OSError as e:
            log.debug("writing to kiln-supervisor failed: %s", e)

    # -- the reader -------------------------------------------------------------------------

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
                job = self._open.pop(m["id"], None)
            if job is None:
                raise _wire.ProtocolError(f"result for id {m['id']}, which is not an open job")
            job.settle_result(m)
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
                job = self._open.get(m["id"])
            if job is not None:
                job.started(m["worker_pid"])
        elif kind == "status":
            with self._lock:
                job = self._open.get(m["id"])
            if job is not None:
                job.status(m)
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
            jobs, self._open = self._open, {}
            waiters, self._stats_waiters = self._stats_waiters, collections.deque()
            code = self._gone_code
        for job_id, job in jobs.items():
            job.settle_exception(job_id, JobError(code, why))
        for waiter in waiters:
            waiter.set_exception(PoolClosedError(why))
        self._hello_event.set()

    # -- the end ----------------------------------------------------------------------------

    def join(self, timeout=None):
        """Waits up to `timeout` s for the reader to see the link's end."""
        self._reader.join(timeout)

    def close(self, why, code):
        """Nothing more may be sent, because `why`; the jobs still open end with JobError
        `code` when the link ends. Nothing if the link is closed already."""
        with self._lock:
            if self._closed is None:
                self._closed = why
                self._gone_code = code

    def hangup(self):
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
