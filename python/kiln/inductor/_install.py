"""install() and uninstall(): what changes in Inductor while Kiln serves its compiles.

Three names, each saved and restored by uninstall():
- torch._inductor.async_compile.SubprocPool becomes a KilnSubprocPool class, and
  config.worker_start_method "subprocess", so that AsyncCompile.process_pool() (Triton kernels and
  anything else Inductor submits as a pickled function) makes a Kiln pool;
- torch._inductor.cpp_builder._run_compile_cmd, where every compiler command for a CPU kernel or
  the C++ wrapper is run, runs it as a Kiln exec job instead of subprocess.run;
- config.compile_threads, when install() is given workers.
"""

import logging
import shlex
import threading

from ._subproc import KilnSubprocPool, worker_env

log = logging.getLogger("kiln.inductor")

DEFAULT_JOB_TIMEOUT = 600.0  # seconds; a compiler or a job running longer fails its kernel
# The compiler pool stops entirely (its supervisor too) after this long without a compile, so that
# between compiles Kiln holds no process, as a CPU-only Inductor holds none; the next compile
# starts it again in a few milliseconds, a small part of one compiler run.
_EXEC_IDLE_CLOSE_S = 1.0
# The counters an idle-closed compiler pool hands on to the next, so that exec_pool_stats() counts
# every compile since install().
_CARRIED_COUNTERS = ("jobs_submitted", "jobs_succeeded", "jobs_failed", "worker_starts",
                     "worker_crashes")

_lock = threading.RLock()
_state = None  # the _Installation while installed
_exit_hook_registered = False


class _Installation:
    def __init__(self, workers, job_timeout, idle_quiesce, options):
        self.workers = workers
        self.job_timeout = job_timeout
        self.idle_quiesce = idle_quiesce
        self.options = options  # kiln.Executor / kiln.Pool keywords: supervisor, log_file, ...
        self.saved = {}
        self.exec_pool = None
        self.exec_env = None  # for a daemon: the environment the compiler needs
        self.exec_lock = threading.Lock()
        self.exec_running = 0  # compiler runs on their way, under exec_lock
        self.exec_idle_timer = None  # closes the compiler pool when it fires, under exec_lock
        self.exec_carried = dict.fromkeys(_CARRIED_COUNTERS, 0)

    def pool_workers(self, default):
        return self.workers or default


class _InstalledSubprocPool(KilnSubprocPool):
    """The class Inductor instantiates as SubprocPool while installed: install()'s options."""

    def __init__(self, nprocs, pickler=None, kind=None, quiesce=False):
        state = _state
        options = dict(state.options) if state else {}
        super().__init__(
            nprocs,
            pickler,
            kind,
            quiesce,
            job_timeout=state.job_timeout if state else None,
            idle_quiesce=state.idle_quiesce if state else None,
            **options,
        )


def installed():
    """True between install() and uninstall()."""
    return _state is not None


def install(workers=None, *, job_timeout=DEFAULT_JOB_TIMEOUT, idle_quiesce=None, **options):
    """Makes Inductor compile on Kiln, from the next compile on: call it before the first
    torch.compile (a pool Inductor already made is shut down).

    workers: the pool size, and Inductor's config.compile_threads (default: Inductor's own
    choice, TORCHINDUCTOR_COMPILE_THREADS or the CPU count). job_timeout: seconds any one job
    (a compiler run, a pickled function) may run before it fails its kernel (None: no limit).
    idle_quiesce: seconds without jobs after which the Python pool's workers stop until the next
    job (default: config.quiesce_async_compile_time when config.quiesce_async_compile_pool);
    the compiler pool stops entirely after 1 s without a compile (it restarts in milliseconds),
    unless it writes a trace or is a daemon's.
    socket: run the compiler commands on the Kiln daemon serving that socket (`kiln daemon
    start`), where `kiln top`, `kiln stats` and `kiln trace start` see them; trace: without a
    socket, the compiler pool's timeline file (kiln-supervisor --trace).
    Other keywords go to kiln.Executor and kiln.Pool (supervisor, log_file, max_worker_rss_mb).
    Calling it again replaces the options."""
    global _state
    with _lock:
        if _state is not None:
            uninstall()
        from torch._inductor import async_compile, config, cpp_builder

        async_compile.shutdown_compile_workers()
        if idle_quiesce is None and config.quiesce_async_compile_pool:
            idle_quiesce = config.quiesce_async_compile_time
        state = _Installation(workers, job_timeout, idle_quiesce, options)
        state.saved = {
            (async_compile, "SubprocPool"): async_compile.SubprocPool,
            (cpp_builder, "_run_compile_cmd"): cpp_builder._run_compile_cmd,
            (config, "worker_start_method"): config.worker_start_method,
        }
        if workers is not None:
            if workers <= 0:
                raise ValueError("workers must be greater than 0")
            state.saved[(config, "compile_threads")] = config.compile_threads
            config.compile_threads = workers
        async_compile.SubprocPool = _InstalledSubprocPool
        cpp_builder._run_compile_cmd = run_compile_cmd
        config.worker_start_method = "subprocess"
        _state = state
        _register_exit_hook()


def uninstall():
    """Restores Inductor's own pools and compiler runs, and stops every Kiln process install()
    started. Does nothing when not installed."""
    global _state
    with _lock:
        state = _state
        if state is None:
            return
        _state = None
        from torch._inductor import async_compile

        async_compile.shutdown_compile_workers()  # our pools among them
        for (module, name), value in state.saved.items():
            setattr(module, name, value)
        _stop_exec_pool(state)


def _stop_exec_pool(state):
    with state.exec_lock:
        pool = _detach_exec_pool(state)
    if pool is not None:
        pool.close()  # a daemon serves on; a supervisor of our own stops


def _cancel_idle_timer(state):
    """Under exec_lock: the compiler pool is not to close when idle (for now)."""
    if state.exec_idle_timer is not None:
        state.exec_idle_timer.cancel()
        state.exec_idle_timer = None


def _detach_exec_pool(state):
    """Takes the compiler pool out of state (under exec_lock); the caller closes it outside the
    lock."""
    _cancel_idle_timer(state)
    pool, state.exec_pool = state.exec_pool, None
    return pool


def _close_if_idle(state, timer):
    """The idle timer's end: closes the compiler pool unless a compile came meanwhile, its
    counters carried over to the next one (asked for outside the lock: a compile need not wait)."""
    with state.exec_lock:
        if state.exec_idle_timer is not timer or state.exec_running:
            return
        state.exec_idle_timer = None
        pool = _detach_exec_pool(state)
    if pool is None:
        return
    try:
        final = pool.stats()
    except Exception:  # a pool that broke has no counts left to carry
        final = {}
    with state.exec_lock:
        for key in _CARRIED_COUNTERS:
            state.exec_carried[key] += final.get(key, 0)
    pool.close()


def _compile_started(state):
    with state.exec_lock:
        state.exec_running += 1
        _cancel_idle_timer(state)


def _compile_ended(state):
    with state.exec_lock:
        state.exec_running -= 1
        if state.exec_running or state.exec_pool is None:
            return
        if state.options.get("trace") or state.options.get("socket"):
            return  # a traced pool writes one timeline; closing a daemon's link frees nothing
        timer = threading.Timer(_EXEC_IDLE_CLOSE_S, lambda: _close_if_idle(state, timer))
        timer.daemon = True
        state.exec_idle_timer = timer
        timer.start()


def _register_exit_hook():
    """At interpreter exit, before concurrent.futures joins Inductor's compile threads (which
    may wait on a job), stop our pools so that those threads end: no hang at exit."""
    global _exit_hook_registered
    if _exit_hook_registered:
        return
    _exit_hook_registered = True
    threading._register_atexit(_at_exit)


def _at_exit():
    state = _state
    if state is None:
        return
    from torch._inductor import async_compile

    for pool in list(async_compile._pool_set):
        if isinstance(pool, KilnSubprocPool):
            pool.shutdown()
    _stop_exec_pool(state)


# -- compiler commands as exec jobs -----------------------------------------------------------

_SOURCE_SUFFIXES = (".cpp", ".cc", ".cxx", ".c", ".cu", ".S", ".s", ".h", ".hpp")  # .h: a PCH


def _source_file(argv):
    """The kernel's source file in a compiler command (what Kiln names the job after), or the
    output file, or the compiler."""
    for arg in argv:
        if arg.endswith(_SOURCE_SUFFIXES) and not arg.startswith("-"):
            return arg
    if "-o" in argv[:-1]:
        return argv[argv.index("-o") + 1]
    return argv[0]


def _exec_pool(state):
    """The pool that runs compiler commands: a supervisor of our own (with `trace` written as
    its timeline), or the daemon at `socket`, where `kiln top` and `kiln stats` see the jobs."""
    with state.exec_lock:
        if state.exec_pool is None:
            import kiln
            from torch._inductor.async_compile import get_compile_threads

            if state.options.get("socket"):
                state.exec_pool = kiln.connect(state.options["socket"])
                state.exec_env = worker_env()  # the daemon's environment is its own
                return state.exec_pool
            options = {k: v for k, v in state.options.items()
                       if k in ("supervisor", "log_file", "trace")}
            if not options.get("log_file"):
                options["log_level"] = "error"
            state.exec_pool = kiln.Pool(
                workers=state.pool_workers(max(1, get_compile_threads())),
                env=worker_env(),
                **options,
            )
        return state.exec_pool


def run_compile_cmd(cmd_line, cwd):
    """cpp_builder._run_compile_cmd on Kiln: the command runs as an exec job on a warm worker,
    named after the kernel's source file; a compile that fails, crashes, hangs past the job
    timeout or loses its worker raises Inductor's CppCompileError naming that file and holding
    the compiler's output."""
    from torch._inductor import exc

    import kiln

    state = _state
    cmd = shlex.split(cmd_line)
    if state is None:  # uninstalled while this compile was on its way
        raise exc.CppCompileError(cmd, "kiln.inductor was uninstalled during the compile")
    source = _source_file(cmd)
    _compile_started(state)
    try:
        pool = _exec_pool(state)
        result = pool.exec(cmd, cwd=cwd, env=state.exec_env, timeout=state.job_timeout).result()
    except kiln.JobTimeout:
        raise exc.CppCompileError(
            cmd, f"the compiler did not finish {source} within the job timeout of "
            f"{state.job_timeout} s (kiln.inductor.install(job_timeout=...)); it was killed"
        ) from None
    except kiln.KilnError as e:
        raise exc.CppCompileError(cmd, f"compiling {source} on Kiln failed: {e}") from e
    finally:
        _compile_ended(state)
    output = (result.stdout + result.stderr).decode("utf-8", errors="replace")
    if result.signal:
        raise exc.CppCompileError(
            cmd, f"the compiler was killed by signal {result.signal} compiling {source}\n{output}"
        )
    if result.exit_code != 0:
        raise exc.CppCompileError(
            cmd, f"the compiler exited with status {result.exit_code} compiling {source}\n{output}"
        )


def exec_pool_stats():
    """The stats of the pool that runs compiler commands, its counters counting every compile
    since install() (the pool closes when idle); None before the first compile. While the pool
    is closed, only the counters."""
    state = _state
    if state is None:
        return None
    with state.exec_lock:  # the idle timer closes no pool while its stats are read
        carried = dict(state.exec_carried)
        if state.exec_pool is None:
            return carried if carried["jobs_submitted"] else None
        stats = state.exec_pool.stats()
    for key in _CARRIED_COUNTERS:
        stats[key] += carried[key]
    return stats


__all__ = ["install", "uninstall", "installed", "run_compile_cmd", "exec_pool_stats"]
