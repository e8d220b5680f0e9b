"""Python tools forked from one zygote per pool (docs/protocol.md "Zygote link"): every guarantee
of docs/design.md for a forked tool, with real processes: its supervision, a crash or a hang that
costs one job, a zygote that dies and comes back, quiesce, and fork safety."""

import os
import signal
import subprocess
import sys
import time

import pytest

import kiln
from conftest import wait_until


def alive(pid):
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def whoami(pause=0.0):
    """The tool's pid, its parent's (its zygote when forked), its process group."""
    time.sleep(pause)
    return os.getpid(), os.getppid(), os.getpgid(0)


def note_initializer(path):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def start_sleeper():
    """A process the tool starts and leaves running."""
    return subprocess.Popen(["sleep", "1000"]).pid


def crash_after_printing():
    print("about to crash", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)


def exit_with(code):
    os._exit(code)


def hang():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)


def random_state(pause):
    import random

    time.sleep(pause)
    return os.getpid(), random.getrandbits(64)


def frozen_objects():
    import gc

    return gc.get_freeze_count()


def worker_pids(ex):
    return [w["pid"] for w in ex._pool.stats()["worker_list"]]


def tools_of_both_workers(ex):
    """(pid, ppid, pgid) of the tool of each of the two workers, from jobs run at once."""
    for _ in range(20):
        found = {r[0]: r for r in ex.map(whoami, [0.2, 0.2])}
        if len(found) == 2:
            return list(found.values())
    raise AssertionError("two jobs at once never ran on two tools")


@pytest.fixture
def ex(supervisor):
    with kiln.Executor(2, supervisor=supervisor, preload=["json"]) as executor:
        yield executor


def test_every_tool_is_forked_from_one_zygote_that_ran_the_initializer_once(supervisor, tmp_path):
    marks = tmp_path / "initializer"
    with kiln.Executor(2, supervisor=supervisor, initializer=note_initializer,
                       initargs=(str(marks),)) as ex:
        tools = tools_of_both_workers(ex)
        zygotes = {ppid for _, ppid, _ in tools}
        assert len(zygotes) == 1, tools
        (zygote,) = zygotes
        assert zygote not in worker_pids(ex)
        assert marks.read_text() == f"{zygote}\n"
        assert ex.submit(frozen_objects).result() > 0, "the zygote froze its heap before forking"


def test_a_forked_tool_leads_its_own_group_and_dies_with_its_worker(supervisor):
    with kiln.Executor(1, supervisor=supervisor) as ex:
        _a_forked_tool_dies_with_its_worker(ex)


def _a_forked_tool_dies_with_its_worker(ex):
    pid, _, pgid = ex.submit(whoami).result()
    assert pgid == pid
    sleeper = ex.submit(start_sleeper).result()
    assert os.getpgid(sleeper) == pid
    workers = worker_pids(ex)
    for worker in workers:
        os.kill(worker, signal.SIGKILL)
    start = time.monotonic()
    assert wait_until(lambda: not alive(pid) and not alive(sleeper), 5.0)
    assert time.monotonic() - start < 1.0
    assert ex.submit(whoami).result()[0] != pid, "a replacement serves"


def test_a_sigkilled_supervisor_takes_zygote_and_forked_tools_within_a_second(supervisor):
    ex = kiln.Executor(2, supervisor=supervisor)
    try:
        tools = tools_of_both_workers(ex)
        zygote = tools[0][1]
        sleeper = ex.submit(start_sleeper).result()
        os.kill(ex._pool.pid, signal.SIGKILL)
        start = time.monotonic()
        pids = [zygote, sleeper] + [t[0] for t in tools]
        assert wait_until(lambda: not any(alive(p) for p in pids), 5.0)
        assert time.monotonic() - start < 1.0
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def test_a_crash_of_a_forked_tool_costs_its_job_alone_and_says_how_it_ended(ex):
    sibling = ex.submit(whoami, 1.0)
    with pytest.raises(kiln.WorkerCrashed) as info:
        ex.submit(crash_after_printing).result()
    assert "was killed by SIGSEGV during the job" in str(info.value)
    assert "about to crash" in info.value.detail
    assert sibling.result()[0] > 0
    with pytest.raises(kiln.WorkerCrashed) as info:
        ex.submit(exit_with, 7).result()
    assert "exited with status 7 during the job" in str(info.value)
    assert [ex.submit(whoami).result()[1] for _ in range(2)]


def test_a_hung_forked_tool_costs_its_job_alone(supervisor):
    with kiln.Executor(2, supervisor=supervisor, job_timeout=2.0) as ex:
        sibling = ex.submit(whoami)
        with pytest.raises(kiln.JobTimeout):
            ex.submit(hang).result()
        assert sibling.result()[0] > 0
        assert ex.submit(whoami).result()[0] > 0


def test_a_dead_zygote_costs_no_job_and_is_started_again(ex):
    tools = tools_of_both_workers(ex)
    zygote = tools[0][1]
    running = ex.submit(whoami, 1.0)
    os.kill(zygote, signal.SIGKILL)
    assert running.result()[0] in {t[0] for t in tools}, "the tools outlive their zygote"
    # A tool that crashes now is replaced, forked by the zygote started again or from scratch.
    with pytest.raises(kiln.WorkerCrashed):
        ex.submit(exit_with, 3).result()
    assert ex.submit(whoami).result()[0] > 0

    def forked_by_a_new_zygote():
        with pytest.raises(kiln.WorkerCrashed):
            ex.submit(exit_with, 3).result()
        _, ppid, _ = ex.submit(whoami).result()
        return ppid not in (zygote, *worker_pids(ex))

    assert wait_until(forked_by_a_new_zygote, 20.0)


def test_quiesce_stops_the_zygote_too(supervisor):
    with kiln.Executor(2, supervisor=supervisor, idle_quiesce=0.2) as ex:
        _, zygote, _ = ex.submit(whoami).result()
        assert wait_until(lambda: not alive(zygote), 10.0)
        assert wait_until(lambda: not ex._pool.stats()["worker_list"], 10.0)
        _, again, _ = ex.submit(whoami).result()
        assert again != zygote and again not in worker_pids(ex)


def test_forked_tools_get_fresh_random_seeds(ex):
    for _ in range(20):
        states = dict(ex.map(random_state, [0.2, 0.2]))
        if len(states) == 2:
            break
    assert len(set(states.values())) == 2


def test_a_preload_that_starts_a_thread_is_named_and_its_tools_start_from_scratch(
    supervisor, tmp_path
):
    (tmp_path / "kiln_threader.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n"
    )
    log = tmp_path / "kiln.log"
    sys.path.insert(0, str(tmp_path))
    try:
        with kiln.Executor(1, supervisor=supervisor, preload=["kiln_threader"],
                           log_file=str(log)) as ex:
            pid, ppid, _ = ex.submit(whoami).result()
            assert ppid in worker_pids(ex), "started by its worker, not forked"
    finally:
        sys.path.remove(str(tmp_path))
    assert "importing kiln_threader started a thread" in log.read_text()


def test_a_pool_without_zygote_starts_every_tool_from_scratch(supervisor):
    with kiln.Executor(1, supervisor=supervisor, zygote=False) as ex:
        _, ppid, _ = ex.submit(whoami).result()
        assert ppid in worker_pids(ex)
