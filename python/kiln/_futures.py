"""The futures of a pool's jobs: a submit's _JobFuture (and kiln.cancel, which stops its job), a
map's _MapResults, and the JobStatus their on_status hears. The link's reader settles them
through the calls both have (started, status, settle_result, settle_exception); they reach the
link only to cancel their jobs."""

import collections
import concurrent.futures
import dataclasses
import logging
import threading

from ._errors import KilnError, job_error

log = logging.getLogger("kiln")


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """A job still running, as the supervisor says every status interval of its run
    (kiln-supervisor --status-interval-ms, default 10 s): given to a submit's on_status."""

    elapsed_ms: int  # run time so far
    worker_pid: int  # the worker running it
    phase: str = None  # what the job is doing, when its kind says ("spawned" for exec)



class _FutureCondition(threading.Condition):
    """threading.Condition with its lock's methods called through the class instead of stored
    in each instance: Condition() keeps five bound methods per instance, objects the cyclic
    garbage collector then walks for as long as the Future lives (a burst of futures held in a
    list made the collector a third of a submit's cost). The behaviour is Condition's."""

    def __init__(self):  # Condition.__init__ is what stores the bound methods: not called
        self._lock = threading.RLock()
        self._waiters = collections.deque()

    def acquire(self, *args, **kwargs):
        return self._lock.acquire(*args, **kwargs)

    def release(self):
        self._lock.release()

    def _release_save(self):
        return self._lock._release_save()

    def _acquire_restore(self, state):
        self._lock._acquire_restore(state)

    def _is_owned(self):
        return self._lock._is_owned()


_PENDING = concurrent.futures._base.PENDING
_RUNNING = concurrent.futures._base.RUNNING
_CANCELLED = concurrent.futures._base.CANCELLED
_FINISHED = concurrent.futures._base.FINISHED


class _JobFuture(concurrent.futures.Future):
    """A job's Future. A Pool's: cancel() cancels the job itself, queued or running, and the
    future never reports running(). An Executor's (`strict`) keeps concurrent.futures' contract:
    it is RUNNING once a worker has started the job (the supervisor's `started`), and cancel()
    of a running job returns False; kiln.cancel() stops it. (A done-callback per job did the
    same at a third of the submit's cost.) It also carries what the reader needs to settle it:
    how to convert its value and its error, and who hears its status and its start; and the
    link its job went on, to cancel the job."""

    def __init__(self, link, convert=None, convert_error=None, on_status=None, on_start=None,
                 strict=False):
        # Future.__init__'s fields, with a lighter condition (tests/test_pool.py checks that
        # the field set is still Future's own).
        self._condition = _FutureCondition()
        self._state = _PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []
        self._link = link
        self._convert = convert
        self._convert_error = convert_error
        self._on_status = on_status
        self._on_start = on_start
        self._strict = strict
        self.job_id = None

    def cancel(self):
        if not super().cancel():
            return False
        self._link.cancel(self.job_id)
        return True

    def stop(self):
        """kiln.cancel(): cancels the job, queued or running (its worker is replaced); False
        only if it has ended already."""
        with self._condition:
            if self._state == _FINISHED:
                return False
            if self._state in (_PENDING, _RUNNING):
                self._state = _CANCELLED
                self._condition.notify_all()
                notify = True
            else:
                notify = False  # cancelled already
        if notify:
            self._invoke_callbacks()
            self._link.cancel(self.job_id)
        return True

    def _begin(self):
        """Whether the future may take an outcome now; moves it to RUNNING (or to
        CANCELLED_AND_NOTIFIED, which tells the waiters of a cancelled one) on the way."""
        with self._condition:
            if self._state in (_PENDING, _CANCELLED):
                return self.set_running_or_notify_cancel()
            return self._state == _RUNNING

    # The reader's calls, which _MapResults has too.
    def started(self, worker_pid):
        """Its job's `started` message came: a worker runs it now."""
        if self._strict:
            self._begin()
        if self._on_start is not None:
            try:
                self._on_start(worker_pid)
            except Exception:  # noqa: BLE001 - the caller's; the reader must go on
                log.exception("on_start of job %d raised", self.job_id)

    def status(self, m):
        """A `status` message of its running job came: on_status hears it."""
        if self._on_status is not None:
            try:
                self._on_status(JobStatus(m["elapsed_ms"], m["worker_pid"], m.get("phase")))
            except Exception:  # noqa: BLE001 - the caller's; the reader must go on
                log.exception("on_status of job %d raised", self.job_id)

    def settle_result(self, m):
        """Its job's `result` message came."""
        if not self._begin():
            return  # cancelled by our caller; this is the supervisor's `cancelled`
        if m["ok"]:
            try:
                value = m.get("value")
                settle, outcome = self.set_result, self._convert(value) if self._convert else value
            except Exception as e:  # noqa: BLE001 - a value the converter cannot take
                settle = self.set_exception
                outcome = KilnError(f"the value of job {m['id']} cannot be read: {e!r}")
        elif self._convert_error is not None:
            settle, outcome = self.set_exception, self._convert_error(m["error"])
        else:
            settle, outcome = self.set_exception, job_error(m["error"], m.get("worker_pid"))
        try:
            settle(outcome)
        except concurrent.futures.InvalidStateError:
            pass  # kiln.cancel() of the running job came first: it stays cancelled

    def settle_exception(self, job_id, error):
        """Its job ends with `error` without a result (the link is gone)."""
        if self._begin():
            try:
                self.set_exception(error)
            except concurrent.futures.InvalidStateError:
                pass  # cancelled meanwhile by kiln.cancel()

    def wait_done(self):
        concurrent.futures.wait([self])


def cancel(future):
    """Cancels the job of a kiln future, queued or running: a running job's worker is stopped
    and replaced, and the future's result() raises CancelledError. The way to stop a running
    job of kiln.Executor, whose Future.cancel() returns False once the job has started (as
    concurrent.futures says). False if the job has ended already."""
    if not isinstance(future, _JobFuture):
        raise TypeError(f"kiln.cancel() takes a future of kiln.Pool or kiln.Executor, "
                        f"not {type(future).__name__}")
    return future.stop()


_NOT_YET = object()  # a _MapResults slot whose result has not come


class _Failed:
    """A _MapResults slot holding a job's error, to raise when its turn comes."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


class _MapResults:
    """The jobs of one Pool.map, settled by position in one list instead of a Future each: a
    Future (its condition, its lists, the collector's walks of them) was most of what a small
    job cost the client. The reader thread settles; the caller's thread iterates."""

    def __init__(self, link, first_id, count):
        self._link = link
        self._first_id = first_id
        self._values = [_NOT_YET] * count
        self._left = count
        self._want = -1  # the position the iterating thread waits for
        self._condition = threading.Condition(threading.Lock())

    def started(self, worker_pid):
        """A map's jobs do not ask for `started`; a supervisor that sends it anyway is heard."""

    def status(self, m):
        """A map's jobs take no status callback."""

    def settle_result(self, m):
        if m["ok"]:
            self._settle(m["id"], m.get("value"))
        else:
            self._settle(m["id"], _Failed(job_error(m["error"], m.get("worker_pid"))))

    def settle_exception(self, job_id, error):
        self._settle(job_id, _Failed(error))

    def _settle(self, job_id, value):
        """Job `job_id` ended with `value` (a _Failed for an error)."""
        i = job_id - self._first_id
        self._values[i] = value
        self._left -= 1
        if i == self._want or self._left == 0:
            with self._condition:
                self._condition.notify_all()

    def in_order(self):
        values = self._values
        done = 0  # positions yielded or raised
        try:
            for position, value in enumerate(values):
                if value is _NOT_YET:
                    with self._condition:
                        self._want = position
                        while values[position] is _NOT_YET:
                            self._condition.wait()
                    value = values[position]
                values[position] = None  # the caller holds it now, or drops it
                done = position + 1
                if type(value) is _Failed:
                    raise value.error
                yield value
        finally:
            for position in range(done, len(values)):
                if values[position] is _NOT_YET:
                    self._link.cancel(self._first_id + position)

    def wait_done(self):
        """Until every job of the map has ended."""
        with self._condition:
            while self._left:
                self._condition.wait()

