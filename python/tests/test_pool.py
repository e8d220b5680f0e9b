"""kiln.Pool against a real kiln-supervisor and real workers.

The first six tests are PyTorch's compile-worker scenarios (test/inductor/test_compile_worker.py:
basic jobs, exception, crash then still usable, quiesce, quiesce repeatedly, logging) in Kiln's
terms; the rest cover the client's own promises: one outcome per future, cancel, timeouts,
shutdown with and without drain, threads, daemons, and nothing left running afterwards.
"""

import concurrent.futures
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

import pytest

import kiln
from kiln import _wire
from kiln._futures import _JobFuture
from conftest import wait_until


@pytest.fixture
def pool(supervisor):
    p = kiln.Pool(2, supervisor=supervisor, enable_selftest=True, grace_ms=300)
    yield p
    assert p.shutdown() == 0


def exists(pid):
    """True while `pid` is a process that has not been reaped (zombies count as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def own_fds():
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


# -- PyTorch's scenarios ---------------------------------------------------------------------


def test_basic_jobs(pool):
    add = pool.exec(["sh", "-c", "echo $((100 + 1))"])
    sub = pool.exec(["sh", "-c", "echo $((100 - 1))"])
    value = {"int": -5, "bytes": b"\x00\xff", "nested": [None, True, 1.5, {"k": "v"}], 7: "int key"}
    echo = pool.submit("echo", value)
    assert add.result(10).stdout == b"101\n"
    assert sub.result(10).stdout == b"99\n"
    assert echo.result(10) == value
    stats = pool.stats()
    assert (stats["jobs_submitted"], stats["jobs_succeeded"], stats["jobs_failed"]) == (3, 3, 0)


def test_exception(pool):
    with pytest.raises(kiln.JobError) as e:
        pool.submit("selftest", {"action": "fail", "message": "TestException: it broke"}).result(10)
    assert (e.value.code, e.value.message) == ("job_failed", "TestException: it broke")
    assert str(e.value) == "job_failed: TestException: it broke"

    with pytest.raises(kiln.JobError) as e:
        pool.exec(["/nonexistent/cc", "-c", "a.c"]).result(10)
    assert e.value.code == "spawn_failed"
    assert "/nonexistent/cc" in e.value.message

    with pytest.raises(kiln.JobError) as e:
        pool.submit("exec", {"argv": "not a list"}).result(10)
    assert e.value.code == "bad_payload"

    with pytest.raises(kiln.JobError) as e:
        pool.submit("compile-python", {}).result(10)
    assert e.value.code == "unknown_kind"

    # A job's failure costs nothing else: the pool goes on without a restart.
    assert pool.submit("echo", 1).result(10) == 1
    stats = pool.stats()
    assert (stats["jobs_failed"], stats["worker_crashes"], stats["worker_starts"]) == (4, 0, 2)


def test_crash_then_still_usable(pool):
    with pytest.raises(kiln.JobError) as e:
        pool.submit("selftest", {"action": "crash"}).result(10)
    assert e.value.code == "worker_crashed"
    assert e.value.message == f"worker {e.value.worker_pid} was killed by SIGSEGV"
    assert "kiln_selftest_crash" in e.value.detail  # the crashed worker's own stack trace

    with pytest.raises(kiln.JobError) as e:
        pool.submit("selftest", {"action": "exit", "code": 1}).result(10)  # PyTorch's os._exit(1)
    assert (e.value.code, e.value.message) == (
        "worker_crashed",
        f"worker {e.value.worker_pid} exited with status 1",
    )

    add = pool.exec(["sh", "-c", "echo $((100 + 1))"])
    sub = pool.exec(["sh", "-c", "echo $((100 - 1))"])
    assert (add.result(10).stdout, sub.result(10).stdout) == (b"101\n", b"99\n")
    assert pool.stats()["worker_crashes"] == 2


def test_quiesce(pool):
    a = pool.submit("echo", 101)
    pool.quiesce()
    assert a.result(10) == 101  # a job submitted before quiesce still runs
    assert wait_until(lambda: pool.stats()["workers_alive"] == 0)
    pool.wakeup()
    b = pool.submit("echo", 99)
    assert b.result(10) == 99
    assert wait_until(lambda: pool.stats()["workers_alive"] == 2)


def test_quiesce_repeatedly(pool):
    rounds = 5
    for i in range(rounds):
        assert pool.submit("echo", i).result(10) == i
        pool.quiesce()
        pool.quiesce()  # a second quiesce while stopping is harmless
        assert wait_until(lambda: pool.stats()["workers_alive"] == 0)
        pool.wakeup()
        assert wait_until(lambda: pool.stats()["workers_alive"] == 2)
    stats = pool.stats()
    assert stats["worker_starts"] == 2 + 2 * rounds
    assert (stats["worker_crashes"], stats["jobs_succeeded"]) == (0, rounds)


def test_logging(supervisor, tmp_path, caplog):
    log_file = tmp_path / "kiln.log"
    with caplog.at_level(logging.DEBUG, logger="kiln"):
        with kiln.Pool(2, supervisor=supervisor, log_file=log_file, log_level="debug") as p:
            assert p.submit("echo", "x").result(10) == "x"
            pid = p.pid
    text = log_file.read_text()
    assert f"[kiln-supervisor {pid}]" in text
    assert "serving its client link with 2 workers" in text
    assert "kiln-supervisor stopped" in text
    assert any(f"as pid {pid}" in r.getMessage() for r in caplog.records)


# -- the client's own promises ---------------------------------------------------------------


def test_exec_takes_cwd_env_stdin_and_reports_signals(pool, tmp_path):
    r = pool.exec(
        ["sh", "-c", 'pwd; echo "$KILN_TEST_VAR"; cat; echo to-stderr >&2; exit 3'],
        cwd=tmp_path,
        env={"KILN_TEST_VAR": "set"},
        stdin="from stdin\n",
    ).result(10)
    assert r.stdout == f"{tmp_path}\nset\nfrom stdin\n".encode()
    assert (r.stderr, r.exit_code, r.signal, r.returncode) == (b"to-stderr\n", 3, 0, 3)

    r = pool.exec(["/usr/bin/env"], env={"ONLY": "1"}, clear_env=True).result(10)
    assert r.stdout == b"ONLY=1\n"

    r = pool.exec(["sh", "-c", "head -c 100000 /dev/zero"], max_output_bytes=1000).result(10)
    assert (len(r.stdout), r.stdout_truncated, r.exit_code) == (1000, True, 0)

    r = pool.exec(["sh", "-c", "kill -TERM $$"]).result(10)
    assert (r.exit_code, r.signal, r.returncode) == (-1, signal.SIGTERM, -signal.SIGTERM)


def test_arguments_are_checked_before_anything_is_sent(pool):
    with pytest.raises(TypeError, match="not one string"):
        pool.exec("cc -c a.c")
    with pytest.raises(ValueError, match="at least the command"):
        pool.exec([])
    with pytest.raises(ValueError, match="timeout must be positive"):
        pool.submit("echo", 1, timeout=-1)
    with pytest.raises(TypeError):
        pool.submit("echo", object())  # not a msgpack value
    assert pool.submit("echo", 2).result(10) == 2
    assert pool.stats()["jobs_submitted"] == 1


def test_timeout_ends_the_job_and_keeps_the_pool(pool):
    with pytest.raises(kiln.JobError) as e:
        pool.submit("selftest", {"action": "sleep", "ms": 60000}, timeout=0.2).result(10)
    assert e.value.code == "timeout"
    assert pool.submit("echo", "after").result(10) == "after"


def test_on_status_hears_a_job_that_still_runs_and_a_raising_one_harms_nothing(supervisor, caplog):
    with kiln.Pool(2, supervisor=supervisor, status_interval_ms=50) as p:
        said, quick_said = [], []

        def broken(status):
            raise RuntimeError("the caller's bug")

        slow = p.exec(["sh", "-c", "sleep 0.5; echo done"], on_status=said.append)
        quick = p.submit("echo", 1, on_status=quick_said.append)
        raising = p.exec(["sleep", "0.2"], on_status=broken)
        assert quick.result(10) == 1
        assert slow.result(10).stdout == b"done\n"
        assert raising.result(10).exit_code == 0
        assert quick_said == [], "a job answered within the interval hears nothing"
        assert len(said) >= 2, "every 50 ms of a 500 ms job"
        assert all(isinstance(s, kiln.JobStatus) and s.phase == "spawned" for s in said)
        assert len({s.worker_pid for s in said}) == 1 and said[0].worker_pid > 0
        elapsed = [s.elapsed_ms for s in said]
        assert elapsed == sorted(set(elapsed)) and elapsed[0] >= 50 and elapsed[-1] < 1000
        assert "on_status of job 3 raised" in caplog.text
        assert p.submit("echo", "after").result(10) == "after"


def test_on_start_hears_the_worker_that_takes_the_job_before_its_result(supervisor, caplog):
    with kiln.Pool(1, supervisor=supervisor, enable_selftest=True) as p:
        events = []

        def broken(worker_pid):
            raise RuntimeError("the caller's bug")

        first = p.submit("selftest", {"action": "sleep", "ms": 200},
                         on_start=lambda pid: events.append(("start", 1, pid)))
        second = p.exec(["true"], on_start=lambda pid: events.append(("start", 2, pid)))
        raising = p.submit("echo", 3, on_start=broken)
        silent = p.submit("echo", 4)
        first.add_done_callback(lambda f: events.append(("done", 1)))
        assert (first.result(10), second.result(10).exit_code, raising.result(10)) == (None, 0, 3)
        assert silent.result(10) == 4
        worker = p.stats()["worker_list"][0]["pid"]
        assert events[:3] == [("start", 1, worker), ("done", 1), ("start", 2, worker)]
        assert "on_start of job 3 raised" in caplog.text
        assert not first.running(), "a Pool's futures never report running()"


def test_kiln_cancel_of_a_pool_future_is_its_cancel(supervisor):
    with kiln.Pool(1, supervisor=supervisor, enable_selftest=True, grace_ms=300) as p:
        running = p.submit("selftest", {"action": "sleep", "ms": 60000})
        assert wait_until(lambda: p.stats()["jobs_running"] == 1)
        assert kiln.cancel(running) and running.cancelled()
        with pytest.raises(concurrent.futures.CancelledError):
            running.result(10)
        assert wait_until(lambda: p.stats()["jobs_running"] == 0)
        assert p.submit("echo", "next").result(10) == "next"


def test_future_cancel_cancels_the_job_queued_or_running(supervisor):
    with kiln.Pool(1, supervisor=supervisor, enable_selftest=True, grace_ms=300) as p:
        running = p.submit("selftest", {"action": "sleep", "ms": 60000})
        queued = p.submit("selftest", {"action": "sleep", "ms": 60000})
        assert wait_until(lambda: p.stats()["jobs_running"] == 1)
        assert queued.cancel() and running.cancel()
        assert queued.cancelled() and running.cancelled()
        # The supervisor hears of both: nothing queued, nothing running, the worker replaced.
        assert wait_until(lambda: (lambda s: (s["jobs_queued"], s["jobs_running"]))(p.stats()) == (0, 0))
        assert p.submit("echo", "next").result(10) == "next"
        assert p.stats()["jobs_failed"] == 2


def test_shutdown_without_drain_answers_every_job_with_shutdown(supervisor):
    p = kiln.Pool(1, supervisor=supervisor, enable_selftest=True, grace_ms=300)
    futures = [p.submit("selftest", {"action": "sleep", "ms": 60000})]
    futures += [p.submit("echo", i) for i in range(20)]
    assert wait_until(lambda: p.stats()["jobs_running"] == 1)
    assert p.shutdown() == 0
    for f in futures:
        with pytest.raises(kiln.JobError) as e:
            f.result(0)
        assert e.value.code == "shutdown"
    with pytest.raises(kiln.PoolClosedError):
        p.submit("echo", 1)
    assert p.shutdown() == 0  # again: at once, same status


def test_shutdown_with_drain_finishes_every_job(supervisor):
    p = kiln.Pool(2, supervisor=supervisor)
    futures = [p.submit("echo", i) for i in range(500)]
    assert p.shutdown(drain=True) == 0
    assert [f.result(0) for f in futures] == list(range(500))


def test_context_manager_drains_on_success_and_cancels_on_error(supervisor):
    with kiln.Pool(2, supervisor=supervisor) as p:
        done = [p.submit("echo", i) for i in range(100)]
    assert [f.result(0) for f in done] == list(range(100))

    with pytest.raises(RuntimeError, match="build failed"):
        with kiln.Pool(1, supervisor=supervisor, enable_selftest=True, grace_ms=300) as p:
            slow = p.submit("selftest", {"action": "sleep", "ms": 60000})
            raise RuntimeError("build failed")
    with pytest.raises(kiln.JobError) as e:
        slow.result(0)
    assert e.value.code == "shutdown"


def test_many_threads_share_one_pool(pool):
    results = {}

    def work(t):
        futures = [pool.submit("echo", [t, i]) for i in range(200)]
        results[t] = [f.result(30) for f in futures]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {t: [[t, i] for i in range(200)] for t in range(8)}
    assert pool.stats()["jobs_succeeded"] == 1600


def test_submit_many_is_a_submit_per_payload_sent_together(pool):
    payloads = [[i, b"x" * (i % 7)] for i in range(5000)]  # many writes' worth
    futures = pool.submit_many("echo", payloads)
    assert len({f.job_id for f in futures}) == 5000
    assert [f.result(30) for f in futures] == payloads
    failing = pool.submit_many("selftest", [{"action": "fail", "message": "no"}] * 2, timeout=5)
    for f in failing:
        with pytest.raises(kiln.JobError) as e:
            f.result(10)
        assert (e.value.code, e.value.message) == ("job_failed", "no")
    with pytest.raises(TypeError):
        pool.submit_many("echo", [1, object(), 3])  # the second cannot be encoded: none is sent
    assert pool.submit_many("echo", []) == []
    stats = pool.stats()
    assert (stats["jobs_submitted"], stats["jobs_succeeded"], stats["jobs_failed"]) == (5002, 5000, 2)


def test_map_gives_values_in_order_raises_at_a_failure_and_cancels_what_is_left(supervisor):
    with kiln.Pool(1, supervisor=supervisor, enable_selftest=True, grace_ms=300) as p:
        assert list(p.map("echo", range(300))) == list(range(300))
        jobs = [{"action": "fail", "message": "second"}] + [{"action": "sleep", "ms": 60000}] * 3
        values = p.map("selftest", [{"action": "sleep", "ms": 1}] + jobs)
        assert next(values) is None  # the selftest sleep's value
        with pytest.raises(kiln.JobError) as e:
            next(values)
        assert (e.value.code, e.value.message) == ("job_failed", "second")
        values.close()  # the three sleeps not reached are cancelled, queued or running
        assert wait_until(lambda: (lambda s: (s["jobs_queued"], s["jobs_running"]))(p.stats()) == (0, 0))
        assert p.stats()["jobs_failed"] == 4
        assert list(p.map("echo", ["after"])) == ["after"]


def test_a_map_whose_supervisor_dies_raises_shutdown_and_ends(supervisor):
    p = kiln.Pool(1, supervisor=supervisor, enable_selftest=True)
    values = p.map("selftest", [{"action": "sleep", "ms": 1}] + [{"action": "sleep", "ms": 60000}] * 2)
    assert next(values) is None
    assert wait_until(lambda: p.stats()["jobs_running"] == 1)
    os.kill(p.pid, signal.SIGKILL)
    with pytest.raises(kiln.JobError) as e:
        next(values)
    assert (e.value.code, e.value.message) == ("shutdown", "kiln-supervisor closed the link")
    with pytest.raises(StopIteration):  # as for ProcessPoolExecutor.map: the first error ends it
        next(values)
    assert p.shutdown() == -signal.SIGKILL


def test_job_futures_are_futures_to_wait_as_completed_and_result_timeouts(pool):
    # _JobFuture sets Future's fields itself: the set must be what this Python's Future has.
    assert set(vars(concurrent.futures.Future())) <= set(vars(_JobFuture(None)))
    slow = pool.submit("selftest", {"action": "sleep", "ms": 60000})
    quick = pool.submit("echo", "quick")
    done, not_done = concurrent.futures.wait([slow, quick], timeout=10, return_when="FIRST_COMPLETED")
    assert (done, not_done) == ({quick}, {slow})
    assert [f.result() for f in concurrent.futures.as_completed([quick], timeout=10)] == ["quick"]
    with pytest.raises(concurrent.futures.TimeoutError):
        slow.result(timeout=0.05)
    called = []
    slow.add_done_callback(called.append)
    assert slow.cancel() and slow.cancelled() and called == [slow]
    with pytest.raises(concurrent.futures.CancelledError):
        slow.result(0)


def test_nothing_is_left_running_and_no_fd_is_left_open(supervisor):
    fds_before = own_fds()
    p = kiln.Pool(2, supervisor=supervisor)
    p.exec(["sh", "-c", "sleep 60 & echo started"]).result(10)  # a background child as well
    workers = [w["pid"] for w in p.stats()["worker_list"]]
    sup_pid = p.pid
    assert len(workers) == 2 and all(exists(w) for w in workers)
    assert p.shutdown() == 0
    assert not exists(sup_pid)
    assert wait_until(lambda: not any(exists(w) for w in workers))
    assert own_fds() == fds_before


def test_a_killed_supervisor_ends_every_open_job_and_its_workers(supervisor):
    p = kiln.Pool(2, supervisor=supervisor, enable_selftest=True)
    workers = [w["pid"] for w in p.stats()["worker_list"]]
    slow = p.submit("selftest", {"action": "sleep", "ms": 60000})
    assert wait_until(lambda: p.stats()["jobs_running"] == 1)
    os.kill(p.pid, signal.SIGKILL)
    with pytest.raises(kiln.JobError) as e:
        slow.result(10)
    assert (e.value.code, e.value.message) == ("shutdown", "kiln-supervisor closed the link")
    with pytest.raises(kiln.PoolClosedError):
        p.submit("echo", 1)
    assert p.shutdown() == -signal.SIGKILL
    assert wait_until(lambda: not any(exists(w) for w in workers))  # their watchdogs saw it


def test_start_failures_are_clear(supervisor, tmp_path):
    with pytest.raises(FileNotFoundError):
        kiln.Pool(1, supervisor=tmp_path / "no-such-supervisor")
    with pytest.raises(kiln.KilnError, match="exited with status 2 before it was ready"):
        kiln.Pool(0, supervisor=supervisor, stderr=subprocess.DEVNULL)  # --workers 0 is invalid
    with pytest.raises(ValueError, match="'listen' is set by kiln.Pool itself"):
        kiln.Pool(1, supervisor=supervisor, listen="/tmp/x")


def test_a_given_key_is_the_pools_key(supervisor):
    key = b"build 1234"
    with kiln.Pool(1, supervisor=supervisor, key=key) as p:
        assert p.hello["key_id"] == hashlib.blake2b(key, digest_size=32).hexdigest()[:16]
        assert p.hello["key_id"] == kiln.key_id(key)
        assert p.hello["workers"] == 1 and p.hello["kinds"] == ["echo", "exec"]


@pytest.fixture
def daemon(supervisor):
    """start(*options) runs kiln-supervisor --listen on a fresh socket and returns (process,
    path) once the path exists; whatever a test leaves running is killed afterwards."""
    started = []
    with tempfile.TemporaryDirectory() as d:

        def start(*options):
            path = os.path.join(d, f"kiln{len(started)}.sock")
            proc = subprocess.Popen([supervisor, "--listen", path, *options])
            started.append(proc)
            assert wait_until(lambda: os.path.exists(path))
            return proc, path

        yield start
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_connect_to_a_daemon(daemon):
    proc, path = daemon("--workers", "2")
    first = kiln.connect(path)
    assert first.submit("echo", "one").result(10) == "one"
    first.close()  # only the connection ends
    assert proc.poll() is None

    with kiln.connect(path) as second:
        r = second.exec(["sh", "-c", "echo two"]).result(10)
        assert r.stdout == b"two\n"
        assert second.pid == proc.pid
        assert second.shutdown(drain=True) is None
    assert proc.wait(10) == 0
    assert not os.path.exists(path)

    with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
        kiln.connect(path)


def test_a_daemons_jobs_run_in_the_callers_directory(daemon, tmp_path, monkeypatch):
    proc, path = daemon("--workers", "1")
    monkeypatch.chdir(tmp_path)
    with kiln.connect(path) as pool:
        assert pool.exec(["pwd"]).result(10).stdout == os.fsencode(tmp_path) + b"\n"
        assert pool.exec(["pwd"], cwd="/").result(10).stdout == b"/\n"


def test_closing_a_connection_cancels_only_its_own_jobs(daemon):
    proc, path = daemon("--workers", "2", "--enable-selftest")
    leaving, staying = kiln.connect(path), kiln.connect(path)
    lost = leaving.submit("selftest", {"action": "sleep", "ms": 60000})
    kept = staying.submit("selftest", {"action": "sleep", "ms": 300})
    assert wait_until(lambda: staying.stats()["jobs_running"] == 2)
    leaving.close()
    with pytest.raises(kiln.JobError) as e:
        lost.result(0)
    assert (e.value.code, e.value.message) == ("cancelled", "the connection was closed")
    assert kept.result(10) is None
    assert wait_until(lambda: staying.stats()["jobs_running"] == 0)
    staying.shutdown()
    assert proc.wait(10) == 0


def test_closing_a_connection_with_wait_finishes_its_maps_and_futures(daemon):
    proc, path = daemon("--workers", "2", "--enable-selftest")
    conn = kiln.connect(path)
    values = conn.map("selftest", [{"action": "sleep", "ms": 200}] * 3)
    future = conn.submit("selftest", {"action": "sleep", "ms": 200})
    conn.close(wait=True)  # returns once all four have ended
    assert future.done() and future.result(0) is None
    assert list(values) == [None] * 3
    with kiln.connect(path) as other:
        assert other.stats()["jobs_succeeded"] == 4
        other.shutdown()
    assert proc.wait(10) == 0


def test_socket_peers_see_the_protocol_errors_of_others_only(daemon):
    """A client that breaks the protocol loses its own connection; a kiln.Pool beside it goes on."""
    proc, path = daemon("--workers", "1")
    good = kiln.connect(path)
    bad = socket.socket(socket.AF_UNIX)
    bad.connect(path)
    bad.sendall(b"\x00\x00\x00\x00")  # length 0
    data = b""
    while chunk := bad.recv(65536):
        data += chunk
    assert b"protocol_error" in data
    bad.close()
    assert good.submit("echo", "fine").result(10) == "fine"
    good.shutdown()
    assert proc.wait(10) == 0


def test_connect_refuses_a_socket_of_another_user_before_sending_anything():
    if os.getuid() != 0:
        pytest.skip("needs root to listen as another user")
    uid = 54321  # an unused uid: root may take it without an account
    directory = tempfile.mkdtemp(prefix="kiln-forger-")  # not under pytest's root-only tmp_path
    os.chown(directory, uid, uid)
    path = os.path.join(directory, "s.sock")
    ready_r, ready_w = os.pipe()
    count_r, count_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forger: listens as that user, counts what its one client sends
        try:
            os.close(ready_r)
            os.close(count_r)
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(4)
            os.write(ready_w, b"r")
            conn, _ = listener.accept()
            forged = {"type": "hello", "protocol": 1, "server": "forged", "pid": 1,
                      "workers": 1, "kinds": ["echo"], "key_id": "0" * 16}
            try:
                conn.sendall(_wire.encode(forged))
            except OSError:
                pass  # the client may already have refused and closed
            received = 0
            try:
                while chunk := conn.recv(4096):
                    received += len(chunk)
            except ConnectionResetError:
                pass  # closed with our forged hello unread: the end, as EOF is
            os.write(count_w, str(received).encode())
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(count_w)
    try:
        assert os.read(ready_r, 1) == b"r"
        with pytest.raises(PermissionError) as e:
            kiln.connect(path, timeout=10)
        assert str(e.value) == (
            f"{path} is served by uid {uid} (pid {pid}), not by this user (uid 0): "
            "refusing to use it"
        )
        assert os.read(count_r, 32) == b"0", "not one byte reaches the forger"
    finally:
        os.close(ready_r)
        os.close(count_r)
        os.waitpid(pid, 0)
        shutil.rmtree(directory)
