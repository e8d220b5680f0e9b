"""kiln.Executor against real supervisors, workers and Python tools: the checks CPython's own
concurrent.futures tests make of an executor, and PyTorch's compile-worker scenarios, written
from their documented behaviour."""

import concurrent.futures
import concurrent.futures.process
import contextlib
import os
import sys
import time

import pytest

import kiln
from conftest import wait_until


def square(x):
    return x * x


def capture(*args, **kwargs):
    return args, kwargs


def fail(*args):
    raise ValueError(*args)


def divide(a, b):
    return a / b


def crash():
    import ctypes

    ctypes.string_at(0)


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def set_marker(value):
    os.environ["KILN_TEST_MARKER"] = value


def read_marker():
    return os.environ.get("KILN_TEST_MARKER")


def no_compiler():
    raise ValueError("no compiler found")


def wait_for_file(path, value):
    """Runs until `path` exists (the test creates it to let the job end; at most 120 s), then
    returns value."""
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)
    return value


@contextlib.contextmanager
def releasing(path):
    """Creates `path` on the way out, whatever happened: the jobs waiting for it end, and so can
    the executor's shutdown after a failed assertion."""
    try:
        yield path
    finally:
        open(path, "a").close()


@pytest.fixture
def ex(supervisor):
    with kiln.Executor(2) as executor:
        yield executor


# -- as concurrent.futures documents an executor ------------------------------------------


def test_submit_runs_in_another_process(ex):
    assert ex.submit(pow, 2, 8).result(timeout=30) == 256
    assert ex.submit(os.getpid).result() != os.getpid()


def test_keyword_arguments_reach_fn_whatever_their_names(ex):
    got = ex.submit(capture, 1, fn=2, timeout=3, priority=4).result()
    assert got == ((1,), {"fn": 2, "timeout": 3, "priority": 4})


def test_lambdas_and_closures_travel_by_value(ex):
    base = 40
    assert ex.submit(lambda x: x + base, 2).result() == 42


def test_map_keeps_order_with_and_without_chunks(ex):
    expect = list(map(pow, range(20), range(20)))
    assert list(ex.map(pow, range(20), range(20))) == expect
    assert list(ex.map(pow, range(20), range(20), chunksize=7)) == expect
    with pytest.raises(ValueError, match="chunksize must be >= 1"):
        ex.map(pow, [1], [1], chunksize=0)


def test_a_chunk_travels_as_one_job(ex):
    before = ex.pool.stats()["jobs_submitted"]
    assert list(ex.map(square, range(10), chunksize=5)) == [x * x for x in range(10)]
    assert ex.pool.stats()["jobs_submitted"] - before == 2


def test_map_raises_the_exception_where_it_happened(ex):
    results = ex.map(divide, [1, 2, 3], [1, 0, 1])
    assert next(results) == 1.0
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout_raises_timeout_error(ex):
    results = ex.map(sleep_then, [0, 10], [1, 2], timeout=1)
    assert next(results) == 1
    with pytest.raises(TimeoutError):
        next(results)


def test_an_exception_is_raised_again_with_its_type_args_and_remote_traceback(ex):
    with pytest.raises(ValueError) as info:
        ex.submit(fail, "bad input", 3).result()
    assert info.value.args == ("bad input", 3)
    cause = str(info.value.__cause__)
    assert "Traceback (most recent call last)" in cause
    assert "in fail" in cause
    assert "ValueError: ('bad input', 3)" in cause


def test_an_exception_class_of_the_callers_own_comes_back(ex):
    class CompileError(Exception):
        pass

    def compile_it():
        raise CompileError("undefined symbol")

    with pytest.raises(Exception) as info:
        ex.submit(compile_it).result()
    assert type(info.value).__name__ == "CompileError"
    assert info.value.args == ("undefined symbol",)


def test_wait_and_as_completed(ex):
    futures = [ex.submit(sleep_then, 0.05 * i, i) for i in range(4)]
    done, not_done = concurrent.futures.wait(futures, timeout=30)
    assert len(done) == 4 and not not_done
    futures = [ex.submit(sleep_then, 0, i) for i in range(6)]
    assert sorted(f.result() for f in concurrent.futures.as_completed(futures, timeout=30)) == list(
        range(6)
    )
    slow = ex.submit(sleep_then, 10, "slow")
    fast = ex.submit(square, 3)
    done, not_done = concurrent.futures.wait(
        [slow, fast], timeout=30, return_when=concurrent.futures.FIRST_COMPLETED
    )
    assert done == {fast} and not_done == {slow}
    assert kiln.cancel(slow)


def test_shutdown_waits_then_refuses_new_work(supervisor):
    ex = kiln.Executor(2)
    futures = [ex.submit(sleep_then, 0.1, i) for i in range(4)]
    ex.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(square, 1)
    ex.shutdown()  # again: nothing happens


def test_shutdown_without_wait_returns_and_the_jobs_still_finish(supervisor):
    ex = kiln.Executor(1)
    future = ex.submit(sleep_then, 0.5, "done")
    start = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - start < 0.4
    assert future.result(timeout=30) == "done"


def test_shutdown_with_cancel_futures_cancels_only_what_has_not_started(supervisor, tmp_path):
    ex = kiln.Executor(1)
    with releasing(str(tmp_path / "release")) as release:
        futures = [ex.submit(wait_for_file, release, i) for i in range(5)]
        assert wait_until(futures[0].running)
        ex.shutdown(wait=False, cancel_futures=True)
        assert [f.cancelled() for f in futures] == [False, True, True, True, True]
    assert futures[0].result(timeout=30) == 0
    assert ex.pool._proc.wait(timeout=30) == 0, "then the pool stops"


def test_shutdown_with_cancel_futures_as_cpythons_own_test_checks_it(supervisor):
    # test_concurrent_futures' test_cancel_futures, with a wait for a first start (its
    # ProcessPoolExecutor marks the jobs it has handed to its call queue running at once).
    ex = kiln.Executor(2)
    futures = [ex.submit(time.sleep, 0.1) for _ in range(50)]
    assert wait_until(lambda: any(f.running() for f in futures))
    ex.shutdown(cancel_futures=True)
    cancelled = [f for f in futures if f.cancelled()]
    assert len(cancelled) > 20
    others = [f for f in futures if not f.cancelled()]
    assert others and all(f.done() and f.exception() is None for f in others)


def test_initializer_runs_once_in_each_worker_before_its_jobs(supervisor):
    with kiln.Executor(2, initializer=set_marker, initargs=("warm",)) as ex:
        assert [ex.submit(read_marker).result() for _ in range(4)] == ["warm"] * 4


def test_a_failing_initializer_makes_every_job_raise_pool_unavailable(supervisor):
    with kiln.Executor(1, initializer=no_compiler) as ex:
        with pytest.raises(kiln.PoolUnavailable) as info:
            ex.submit(square, 2).result(timeout=60)
    assert isinstance(info.value, concurrent.futures.process.BrokenProcessPool)
    assert "ValueError: no compiler found" in info.value.detail
    assert "in no_compiler" in info.value.detail


def test_max_tasks_per_child_replaces_the_worker(supervisor):
    with kiln.Executor(1, max_tasks_per_child=1) as ex:
        assert ex.submit(os.getpid).result() != ex.submit(os.getpid).result()


def test_constructor_arguments_are_checked(supervisor):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        kiln.Executor(0)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        kiln.Executor(1, initializer=3)
    with pytest.raises(ValueError, match="max_tasks_per_child must be >= 1"):
        kiln.Executor(1, max_tasks_per_child=0)


# -- what ProcessPoolExecutor cannot do ------------------------------------------------------


def test_a_crash_fails_only_its_job_and_the_executor_serves_on(ex):
    slow = ex.submit(sleep_then, 0.3, "sibling")
    with pytest.raises(kiln.WorkerCrashed) as info:
        ex.submit(crash).result()
    assert isinstance(info.value, concurrent.futures.process.BrokenProcessPool)
    assert info.value.code == "worker_crashed"
    assert "tool python" in info.value.message and "SIGSEGV" in info.value.message
    assert "Fatal Python error: Segmentation fault" in info.value.detail
    assert slow.result() == "sibling"
    assert list(ex.map(square, range(6))) == [0, 1, 4, 9, 16, 25]


def test_a_job_past_its_timeout_raises_job_timeout(ex):
    with pytest.raises(kiln.JobTimeout) as info:
        ex.with_options(timeout=0.3).submit(time.sleep, 30).result()
    assert isinstance(info.value, TimeoutError)
    assert info.value.message.startswith("the job ran past its timeout of 300 ms")
    assert ex.submit(square, 5).result() == 25


def test_a_future_is_running_once_a_worker_has_started_its_job_and_not_before(supervisor, tmp_path):
    with kiln.Executor(1) as ex, releasing(str(tmp_path / "release")) as release:
        # Short jobs first, so that the supervisor sends the next jobs ahead to the busy worker
        # (pipelining): a job sent ahead has not started either.
        assert list(ex.map(square, range(20))) == [x * x for x in range(20)]
        first = ex.submit(wait_for_file, release, "first")
        behind = [ex.submit(square, x) for x in range(3)]
        assert wait_until(first.running)
        assert not any(f.running() for f in behind)
        assert not first.cancel(), "a running job is not cancelled by Future.cancel()"
        assert first.running() and not first.cancelled()
        assert behind[0].cancel() and behind[0].cancelled()
        open(release, "w").close()
        assert first.result(timeout=30) == "first"
        assert [f.result(timeout=30) for f in behind[1:]] == [1, 4]
        assert not first.running() and first.done()


def test_kiln_cancel_stops_a_running_job(ex):
    future = ex.submit(time.sleep, 30)
    assert wait_until(future.running)
    assert wait_until(lambda: ex.pool.stats()["jobs_running"] == 1)
    assert not future.cancel()
    called = []
    future.add_done_callback(called.append)
    assert kiln.cancel(future)
    assert future.cancelled() and called == [future]
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=0)
    assert wait_until(lambda: ex.pool.stats()["jobs_running"] == 0)
    assert ex.submit(square, 6).result() == 36


def test_kiln_cancel_of_a_queued_job_of_a_finished_one_and_of_another_future(supervisor, tmp_path):
    with kiln.Executor(1) as ex, releasing(str(tmp_path / "release")) as release:
        blocker = ex.submit(wait_for_file, release, None)
        queued = ex.submit(square, 2)
        assert kiln.cancel(queued) and queued.cancelled()
        assert kiln.cancel(queued), "cancelled already: still cancelled"
        open(release, "w").close()
        blocker.result(timeout=30)
        done = ex.submit(square, 3)
        assert done.result(timeout=30) == 9
        assert not kiln.cancel(done) and done.result() == 9
    with pytest.raises(TypeError, match="kiln.cancel"):
        kiln.cancel(concurrent.futures.Future())


def test_priority_runs_first(supervisor):
    with kiln.Executor(1) as ex:
        blocker = ex.submit(sleep_then, 0.3, None)
        assert wait_until(lambda: ex.pool.stats()["jobs_running"] == 1)
        order = []
        low = ex.with_options(priority=0).submit(sleep_then, 0, "low")
        high = ex.with_options(priority=5).submit(sleep_then, 0, "high")
        for f in concurrent.futures.as_completed([low, high], timeout=30):
            order.append(f.result())
        blocker.result()
    assert order == ["high", "low"]


def test_workers_use_the_callers_interpreter_and_sys_path(ex):
    executable, path = ex.submit(lambda: (sys.executable, list(sys.path))).result()
    assert executable == sys.executable
    assert all((entry or os.getcwd()) in path for entry in sys.path)


# A module planted where it does not belong: it leaves a marker, then steps aside for the module
# of that name it shadows, so that only the marker tells it ran.
_PLANTED = """
import os, sys
with open(os.path.join({markers!r}, __name__), "w") as f:
    f.write("ran")
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules[__name__]
try:
    sys.modules[__name__] = __import__(__name__)
except ImportError:
    pass
"""


def test_the_tool_runs_no_code_planted_in_its_directory_or_environment(
    supervisor, tmp_path, monkeypatch
):
    # A shared directory the build runs in, and an environment pointing at another: a module the
    # tool imports (msgpack), and one every interpreter that takes PYTHONPATH runs at start.
    markers = tmp_path / "markers"
    markers.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "msgpack.py").write_text(_PLANTED.format(markers=str(markers)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("sitecustomize", "usercustomize", "cloudpickle"):
        (elsewhere / f"{name}.py").write_text(_PLANTED.format(markers=str(markers)))
    startup = elsewhere / "startup.py"
    startup.write_text(_PLANTED.format(markers=str(markers)))
    monkeypatch.chdir(shared)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry])  # no "" (cwd)
    env = dict(os.environ, PYTHONPATH=str(elsewhere), PYTHONSTARTUP=str(startup))
    with kiln.Executor(1, env=env) as ex:
        assert ex.submit(square, 7).result(timeout=60) == 49
        path = ex.submit(lambda: list(sys.path)).result(timeout=60)
    assert sorted(os.listdir(markers)) == []
    assert str(shared) not in path and "" not in path and str(elsewhere) not in path
    # The caller's sys.path, in its order, ahead of the interpreter's own entries (loading the
    # job's functions imported this module's conftest, which put one more entry in front).
    start = path.index(sys.path[0])
    assert path[start : start + len(sys.path)] == sys.path


def test_preloaded_modules_are_imported_before_the_first_job(supervisor):
    assert "wave" not in sys.modules
    with kiln.Executor(1, preload=["wave"]) as ex:
        assert ex.submit(lambda: "wave" in sys.modules).result()


# -- PyTorch's compile-worker scenarios -----------------------------------------------------


def test_quiesce_then_jobs_again_repeatedly(ex):
    for round_ in range(3):
        ex.pool.quiesce()
        assert wait_until(lambda: ex.pool.stats()["workers_alive"] == 0)
        assert ex.submit(square, round_).result() == round_ * round_


def test_logs_are_quiet_by_default_and_go_to_log_file(supervisor, tmp_path, capfd):
    with kiln.Executor(1) as ex:
        with pytest.raises(kiln.WorkerCrashed):
            ex.submit(crash).result()
        assert ex.submit(square, 2).result() == 4
    assert capfd.readouterr().err == ""
    log = tmp_path / "kiln.log"
    with kiln.Executor(1, log_file=log) as ex:
        assert ex.submit(print, "hello from the job").result() is None
    text = log.read_text()
    assert "hello from the job" in text
    assert "kiln-supervisor stopped" in text
