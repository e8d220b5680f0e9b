"""Real torch.compile on the CPU with kiln.inductor installed: results equal to eager, the compile
jobs counted by Kiln, and the faults of a compiler that crashes or hangs, of a program killed or
interrupted mid-compile. Run by the venv's interpreter, which has torch; Inductor's caches are
disabled and each test has a fresh cache directory, so that every compile really happens."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] = "1"  # read when Inductor's config is imported

from conftest import wait_until  # noqa: E402

import torch  # noqa: E402  (the venv suites must fail, not skip, without torch)

import torch._dynamo  # noqa: E402
from torch._inductor import config, cpp_builder  # noqa: E402

import kiln.inductor  # noqa: E402
from kiln.inductor import _install  # noqa: E402

MARK = "12345.0"  # a constant only the faulty kernel holds: the compiler wrapper looks for it

_PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor-cache"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture
def installed(supervisor, monkeypatch):
    monkeypatch.setenv("KILN_SUPERVISOR", supervisor)
    kiln.inductor.install(workers=2)
    yield
    kiln.inductor.uninstall()


@pytest.fixture
def counted(installed):
    """How many compiler commands Inductor ran, each through the installed Kiln run (restored
    before `installed` uninstalls, so that uninstall() finds what install() put there)."""
    calls = []

    def counting(cmd_line, cwd):
        calls.append(cmd_line)
        return _install.run_compile_cmd(cmd_line, cwd)

    cpp_builder._run_compile_cmd = counting
    yield calls
    cpp_builder._run_compile_cmd = _install.run_compile_cmd


def _jobs():
    stats = _install.exec_pool_stats()
    return 0 if stats is None else stats["jobs_succeeded"]


def _check_compiled(fn, *inputs, counted):
    before = _jobs()
    expected = fn(*inputs)
    actual = torch.compile(fn)(*inputs)
    torch.testing.assert_close(actual, expected)
    assert len(counted) >= 1
    assert _jobs() - before == len(counted)


def test_an_mlp_compiles_on_kiln_and_equals_eager(counted):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    with torch.no_grad():
        _check_compiled(model, torch.randn(8, 16), counted=counted)


def test_a_small_convolutional_net_compiles_on_kiln_and_equals_eager(counted):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4).eval(),
                                torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with torch.no_grad():
        _check_compiled(model, torch.randn(2, 3, 8, 8), counted=counted)


def test_an_attention_block_compiles_on_kiln_and_equals_eager(counted):
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()

    def block(x):
        return torch.nn.functional.layer_norm(x + attention(x, x, x)[0], (16,))

    with torch.no_grad():
        _check_compiled(block, torch.randn(2, 5, 16), counted=counted)


def test_dynamic_shapes_compile_on_kiln_and_equal_eager(counted):
    def fn(x):
        return (x.sin() * 2 + x.cos()).sum(dim=-1)

    before = _jobs()
    compiled = torch.compile(fn, dynamic=True)
    for n in (3, 7, 11):
        x = torch.randn(n, 5)
        torch.testing.assert_close(compiled(x), fn(x))
    assert len(counted) >= 1
    assert _jobs() - before == len(counted)


def test_a_backward_pass_compiles_on_kiln_and_equals_eager(counted):
    torch.manual_seed(0)
    weight = torch.randn(6, 6, requires_grad=True)

    def loss(x):
        return torch.tanh(x @ weight).pow(2).sum()

    x = torch.randn(4, 6)
    loss(x).backward()
    expected, weight.grad = weight.grad.clone(), None
    before = _jobs()
    torch.compile(loss)(x).backward()
    torch.testing.assert_close(weight.grad, expected)
    assert len(counted) >= 2  # forward and backward kernels
    assert _jobs() - before == len(counted)


# -- faults ------------------------------------------------------------------------------------


def _faulty_compiler(tmp_path, fault):
    """A compiler wrapper, given to Inductor as its compiler: g++, except for the kernel holding
    MARK, for which it writes its pid to `started` and then crashes or hangs."""
    started = tmp_path / f"{fault}.started"
    action = {"crash": "kill -SEGV $$", "hang": "exec sleep 600"}[fault]
    script = tmp_path / f"cxx-{fault}"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        for a in "$@"; do case "$a" in *.cpp) src="$a";; esac; done
        if [ -n "$src" ] && grep -q '{MARK}' "$src"; then
          echo $$ > '{started}'
          {action}
        fi
        exec g++ "$@"
        """))
    script.chmod(0o755)
    return str(script), started


def _marked(x):
    return x * 12345.0 + 1


def test_a_crashing_compiler_fails_its_kernel_naming_its_source(installed, tmp_path):
    cxx, started = _faulty_compiler(tmp_path, "crash")
    with config.patch({"cpp.cxx": (None, cxx)}):
        with pytest.raises(Exception) as info:
            torch.compile(_marked)(torch.randn(4))
    assert started.exists()
    message = str(info.value)
    assert "killed by signal 11 compiling" in message
    assert ".cpp" in message
    # and the next compile, with the real compiler, still works
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(torch.sin)(torch.ones(3)), torch.ones(3).sin())


def test_a_hanging_compiler_fails_its_kernel_within_the_timeout(supervisor, monkeypatch, tmp_path):
    monkeypatch.setenv("KILN_SUPERVISOR", supervisor)
    cxx, started = _faulty_compiler(tmp_path, "hang")
    kiln.inductor.install(workers=1, job_timeout=5)
    try:  # no precompiled header: its build, by the same compiler, may take longer than 5 s
        with config.patch({"cpp.cxx": (None, cxx), "cpp_cache_precompile_headers": False}):
            with pytest.raises(Exception) as info:
                torch.compile(_marked)(torch.randn(4))
        sleeper = int(started.read_text())
        message = str(info.value)
        assert "did not finish" in message and "within the job timeout of 5 s" in message
        assert ".cpp" in message
        assert wait_until(lambda: not os.path.exists(f"/proc/{sleeper}"), 10)
    finally:
        kiln.inductor.uninstall()


def _kiln_children():
    """This process's children that are Kiln's (a supervisor of its own, a daemon it started)."""
    me, found = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm.startswith("kiln") and _ppid(pid) == me:
                found.append(int(pid))
        except OSError:
            pass
    return _alive(found)


def test_the_compiler_pool_stops_when_idle_and_starts_again_for_the_next_compile(counted,
                                                                                 monkeypatch):
    monkeypatch.setattr(_install, "_EXEC_IDLE_CLOSE_S", 0.2)
    before = _jobs()
    torch.testing.assert_close(torch.compile(torch.cos)(torch.ones(3)), torch.ones(3).cos())
    first = len(counted)
    assert first >= 1
    assert wait_until(lambda: _install._state.exec_pool is None and not _kiln_children(), 10)
    assert _jobs() - before == first  # the closed pool's count is kept
    torch.testing.assert_close(torch.compile(torch.sin)(torch.ones(3)), torch.ones(3).sin())
    assert len(counted) > first
    assert _jobs() - before == len(counted)
    assert wait_until(lambda: not _kiln_children(), 10)


def test_uninstall_leaves_nothing_running(installed, monkeypatch):
    monkeypatch.setattr(_install, "_EXEC_IDLE_CLOSE_S", 600)  # uninstall, not idleness, stops it
    torch.testing.assert_close(torch.compile(torch.cos)(torch.ones(3)), torch.ones(3).cos())
    pool = _install._state.exec_pool
    pids = [pool.pid] + [w["pid"] for w in pool.stats()["worker_list"]]
    kiln.inductor.uninstall()
    assert not kiln.inductor.installed()
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), 5)
    assert cpp_builder._run_compile_cmd is not _install.run_compile_cmd
    kiln.inductor.install(workers=2)  # for the fixture's uninstall


_PROGRAM = """\
import sys, torch, kiln.inductor
from torch._inductor import config
kiln.inductor.install(workers=2)  # the compile runs on one of Inductor's compile threads
config.cpp.cxx = (None, sys.argv[1])
config.cpp_cache_precompile_headers = False
torch.compile(lambda x: x * 12345.0 + 1)(torch.randn(4))
"""


def _program_mid_compile(supervisor, tmp_path):
    """A program that compiles with a hanging compiler; returns it once the compiler runs, with
    the pids of that compiler, its kiln-worker and the kiln-supervisor."""
    cxx, started = _faulty_compiler(tmp_path, "hang")
    (tmp_path / "program.py").write_text(_PROGRAM)
    env = dict(os.environ, KILN_SUPERVISOR=supervisor, PYTHONPATH=_PYTHON_DIR,
               TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "program.py"), cxx], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_until(lambda: started.exists() and started.read_text().strip(), 180)
    compiler = int(started.read_text())
    worker = _ppid(compiler)
    supervisor_pid = _ppid(worker)
    return proc, [compiler, worker, supervisor_pid]


def _ppid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _alive(pids):
    """The pids still running: a zombie has ended (it waits only for its new parent, init or a
    subreaper, to reap it, which is no Kiln process's doing)."""
    return [p for p in pids if _state(p) not in (None, "Z")]


def _none_alive(pids):
    return not _alive(pids)


def test_sigkill_of_the_program_mid_compile_leaves_no_kiln_process(supervisor, tmp_path):
    proc, pids = _program_mid_compile(supervisor, tmp_path)
    proc.kill()
    proc.communicate()
    ended = wait_until(lambda: _none_alive(pids), 1.0)
    assert ended, f"of {pids}, still running: {[(p, _state(p)) for p in _alive(pids)]}"


def test_sigint_mid_compile_ends_the_program_without_a_hang_at_exit(supervisor, tmp_path):
    proc, pids = _program_mid_compile(supervisor, tmp_path)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert b"KeyboardInterrupt" in err
    assert time.monotonic() - start < 60
    assert wait_until(lambda: _none_alive(pids), 5)


# -- without editing the program ----------------------------------------------------------------

_UNCHANGED = """\
import sys, torch
from torch._inductor import config
config.cpp_cache_precompile_headers = False
assert torch.allclose(torch.compile(lambda x: x.sin() + 1)(torch.ones(3)), torch.ones(3).sin() + 1)
import kiln.inductor
from kiln.inductor import _install
jobs = _install.exec_pool_stats()["jobs_succeeded"]
print(kiln.inductor.installed(), _install._state.workers, jobs > 0, sys.argv[1:])
"""


def _run_unchanged(argv, tmp_path, supervisor, **env):
    (tmp_path / "program.py").write_text(_UNCHANGED)
    env = dict(os.environ, KILN_SUPERVISOR=supervisor, TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "c"),
               **env)
    return subprocess.run(argv + [str(tmp_path / "program.py"), "a", "--b"], env=env,
                          capture_output=True, text=True, timeout=300)


def test_python_m_kiln_inductor_runs_a_script_unchanged_with_its_compiles_on_kiln(supervisor,
                                                                                 tmp_path):
    done = _run_unchanged([sys.executable, "-m", "kiln.inductor", "--workers", "1"], tmp_path,
                          supervisor, PYTHONPATH=_PYTHON_DIR)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True 1 True ['a', '--b']"


def test_the_kiln_inductor_variable_installs_in_a_program_started_otherwise(supervisor, tmp_path):
    from kiln.inductor import _launch

    done = _run_unchanged([sys.executable], tmp_path, supervisor, KILN_INDUCTOR="--workers 1",
                          PYTHONPATH=os.pathsep.join([_launch.BOOTSTRAP_DIR, _PYTHON_DIR]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True 1 True ['a', '--b']"


def test_the_options_of_the_launcher_and_the_variable_are_checked():
    from kiln.inductor import _launch

    assert _launch.env_options("--workers 3 --job-timeout=2.5") == {"workers": 3,
                                                                    "job_timeout": 2.5}
    assert _launch.env_options("1") == {}
    with pytest.raises(ValueError, match="unknown option --wrokers"):
        _launch.env_options("--wrokers 3")
    with pytest.raises(ValueError, match="not a int"):
        _launch.parse_options(["--workers", "x"])
    assert _launch.parse_options(["--workers", "2", "s.py", "--workers"]) == ({"workers": 2},
                                                                           ["s.py", "--workers"])


# -- what kiln's tools show of a torch.compile --------------------------------------------------


def test_the_kernels_file_names_its_job_in_the_trace(supervisor, monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("KILN_SUPERVISOR", supervisor)
    trace = tmp_path / "compile.trace.json"
    kiln.inductor.install(workers=1, trace=str(trace))
    try:
        with config.patch(cpp_cache_precompile_headers=False):
            torch.testing.assert_close(torch.compile(torch.tan)(torch.ones(3)), torch.ones(3).tan())
    finally:
        kiln.inductor.uninstall()
    events = json.loads(trace.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    assert any(str(e.get("name", "")).endswith(".cpp") for e in events)


def test_a_compile_on_the_daemon_shows_its_kernel_in_kiln_top(supervisor, monkeypatch, tmp_path):
    kiln_cli = os.path.join(os.path.dirname(supervisor), "kiln")
    socket_path = str(tmp_path / "daemon.sock")
    daemon = subprocess.Popen([supervisor, "--listen", socket_path, "--workers", "1",
                               "--log-level", "error"])
    try:
        assert wait_until(lambda: os.path.exists(socket_path), 30)
        cxx, started = _faulty_compiler(tmp_path, "hang")
        kiln.inductor.install(workers=1, job_timeout=20, socket=socket_path)
        import threading

        failure = []

        def compile_marked():
            try:
                with config.patch({"cpp.cxx": (None, cxx), "cpp_cache_precompile_headers": False}):
                    torch.compile(_marked)(torch.randn(4))
            except Exception as e:  # noqa: BLE001 - the hang's end, checked below
                failure.append(e)

        thread = threading.Thread(target=compile_marked)
        thread.start()
        assert wait_until(lambda: started.exists(), 120)
        top = subprocess.run([kiln_cli, "top", "--once", "--socket", socket_path],
                             capture_output=True, text=True, timeout=30)
        stats = subprocess.run([kiln_cli, "stats", "--socket", socket_path],
                               capture_output=True, text=True, timeout=30)
        thread.join(120)
        assert ".cpp" in top.stdout, top.stdout
        assert json_running(stats.stdout) == 1
        assert failure and "did not finish" in str(failure[0])
    finally:
        kiln.inductor.uninstall()
        daemon.terminate()
        daemon.wait(30)


def json_running(text):
    import json

    return json.loads(text)["jobs_running"]
