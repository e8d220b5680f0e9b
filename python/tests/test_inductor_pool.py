"""KilnSubprocPool against the scenarios of PyTorch's own SubprocPool tests: run by the venv's
interpreter, which has torch (KILN_VENV_PYTHON; scripts/setup-venv.sh makes it)."""

import ctypes
import functools
import operator
import os
import time

import pytest

from conftest import wait_until

import torch  # noqa: E402  (the venv suites must fail, not skip, without torch)

from torch._inductor import config  # noqa: E402
from torch._inductor.compile_worker.subproc_pool import (  # noqa: E402
    SubprocException,
    raise_testexc,
)

from kiln.inductor import KilnSubprocPool  # noqa: E402


# Seconds a job's answer or a worker's start may take when it includes an import of
# torch._inductor (a new pool, or one woken after quiesce): a few seconds alone, much more on a
# loaded machine. A deadline, not a pause: a pool that works is not waited for.
_IMPORT_WAIT = 300


@pytest.fixture(scope="module")
def pool(supervisor):
    """One pool for the scenarios that leave it as they found it: each worker imports torch on
    its way to ready, which takes seconds on a loaded machine."""
    p = KilnSubprocPool(2, job_timeout=10, supervisor=supervisor)
    yield p
    p.shutdown()


@pytest.fixture(scope="module")
def logged_pool(supervisor, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("log") / "workers.log"
    with config.patch(worker_suppress_logging=False, torchinductor_worker_logpath=str(log_path)):
        p = KilnSubprocPool(1, supervisor=supervisor)
    p.log_path = log_path
    yield p
    p.shutdown()


def _alive(stats):
    return stats["workers_alive"]


def test_basic_jobs(pool):
    futures = [pool.submit(operator.add, 100, i) for i in range(4)]
    assert [f.result(_IMPORT_WAIT) for f in futures] == [100, 101, 102, 103]
    assert pool.submit(functools.partial(operator.mul, 6), 7).result(_IMPORT_WAIT) == 42


def test_a_submitted_future_is_running_as_subprocpools_are(pool):
    future = pool.submit(operator.add, 1, 1)
    assert future.running() or future.done()
    assert not future.cancel() or future.done()
    assert future.result(_IMPORT_WAIT) == 2


def test_an_exception_arrives_as_subproc_exception_naming_its_type(pool):
    with pytest.raises(SubprocException) as info:
        pool.submit(raise_testexc).result(_IMPORT_WAIT)
    assert "TestException" in str(info.value)
    assert "Traceback (most recent call last)" in info.value.details
    assert pool.submit(operator.add, 2, 3).result(_IMPORT_WAIT) == 5


@pytest.mark.parametrize("crash", [functools.partial(os._exit, 3),
                                   functools.partial(ctypes.string_at, 0)],
                         ids=["os_exit", "sigsegv"])
def test_a_crashed_worker_fails_its_job_only_and_the_pool_serves_on(pool, crash):
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool) as info:
        pool.submit(crash).result(_IMPORT_WAIT)
    assert info.value.code == "worker_crashed"
    assert [pool.submit(operator.add, i, i).result(_IMPORT_WAIT) for i in range(3)] == [0, 2, 4]
    assert info.value.worker_pid not in [w["pid"] for w in pool.kiln_pool.stats()["worker_list"]]


def test_quiesce_and_wakeup_repeatedly(pool):
    for i in range(2):
        assert pool.submit(operator.add, i, 1).result(_IMPORT_WAIT) == i + 1
        pool.quiesce()
        assert wait_until(lambda: _alive(pool.kiln_pool.stats()) == 0, _IMPORT_WAIT)
        pool.wakeup()
        assert wait_until(lambda: _alive(pool.kiln_pool.stats()) == 2, _IMPORT_WAIT)
    pool.quiesce()
    assert pool.submit(operator.add, 5, 5).result(_IMPORT_WAIT) == 10


def test_quiesce_true_stops_the_workers_after_quiesce_async_compile_time(supervisor):
    with config.patch(quiesce_async_compile_time=0.2):
        p = KilnSubprocPool(1, quiesce=True, supervisor=supervisor)
    try:
        assert p.submit(operator.add, 1, 2).result(_IMPORT_WAIT) == 3
        assert wait_until(lambda: _alive(p.kiln_pool.stats()) == 0, 30)
    finally:
        p.shutdown()


def test_the_workers_log_goes_to_torchinductor_worker_logpath(logged_pool):
    job = logged_pool.submit(print, "a line from a compile job", flush=True)
    assert job.result(_IMPORT_WAIT) is None
    assert wait_until(lambda: "a line from a compile job" in logged_pool.log_path.read_text(), 10)


def test_compile_threads_sizes_the_pool_inductor_makes(supervisor, monkeypatch):
    from torch._inductor import async_compile

    import kiln.inductor

    monkeypatch.setenv("KILN_SUPERVISOR", supervisor)
    with config.patch(compile_threads=3):
        kiln.inductor.install()
        try:
            p = async_compile.AsyncCompile.process_pool()
            assert isinstance(p, KilnSubprocPool)
            assert p.kiln_pool.hello["workers"] == 3
        finally:
            kiln.inductor.uninstall()
    assert p.running is False


def test_a_worker_may_take_minutes_importing_torch_before_its_start_has_failed(pool):
    with open(f"/proc/{pool.kiln_pool.pid}/cmdline") as f:
        args = f.read().split("\0")
    assert args[args.index("--start-timeout-ms") + 1] == "300000"  # the supervisor's own: 30000


def test_a_job_past_its_timeout_fails_and_the_pool_serves_on(pool):
    import kiln

    with pytest.raises(kiln.JobTimeout):
        pool.submit(time.sleep, 30).result(_IMPORT_WAIT)
    assert pool.submit(operator.add, 1, 1).result(_IMPORT_WAIT) == 2


def test_shutdown_fails_open_jobs_and_refuses_new_ones(logged_pool):
    running = logged_pool.submit(time.sleep, 30)
    pid = logged_pool.kiln_pool.pid
    logged_pool.shutdown()
    with pytest.raises(RuntimeError, match="SubprocPool closed"):
        running.result(10)
    with pytest.raises(RuntimeError, match="closed pool"):
        logged_pool.submit(operator.add, 1, 1)
    assert not os.path.exists(f"/proc/{pid}")
