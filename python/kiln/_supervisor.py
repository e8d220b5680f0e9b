"""The other end of a pool's link: where kiln-supervisor is found, its command line (tools,
zygotes, options as flags), starting it on a pipe pair and stopping it, or reaching a daemon's
socket that this user serves."""

import logging
import os
import shlex
import shutil
import socket
import struct
import subprocess

log = logging.getLogger("kiln")

_RESERVED_OPTIONS = {"read_fd", "write_fd", "listen", "parent"}


def _checkouts():
    """The checkouts whose build trees may hold the supervisor: the one this package is in
    (python/kiln, beside build/), and the one it was built from when pip installed it (its
    _checkout.py, which setup.py writes; CMake's install and the .deb have none)."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.normpath(os.path.join(here, "..", ".."))]
    try:
        from . import _checkout
    except ImportError:
        return found
    if os.path.normpath(_checkout.CHECKOUT) not in found:
        found.append(os.path.normpath(_checkout.CHECKOUT))
    return found


def _supervisor_candidates():
    """Where kiln-supervisor may be, in order, after $KILN_SUPERVISOR: the bin/ of the prefix
    this package is installed in (PREFIX/lib/python3*/dist-packages/kiln, and a venv's
    site-packages), then the build trees (build/bin/ beside python/) of the checkout this
    package is in or was installed from, then $PATH."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.normpath(os.path.join(here, "..", "..", "..", "..", "bin",
                                                "kiln-supervisor"))]
    for checkout in _checkouts():
        for build in ("build", "build-debug", "build-asan", "build-tsan"):
            candidates.append(os.path.join(checkout, build, "bin", "kiln-supervisor"))
    return candidates


def _find_supervisor(path):
    if path:
        return os.fspath(path)
    if os.environ.get("KILN_SUPERVISOR"):
        return os.environ["KILN_SUPERVISOR"]  # an explicit choice, checked when it is started
    candidates = _supervisor_candidates()
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("kiln-supervisor")
    if found:
        return found
    raise FileNotFoundError(
        "kiln-supervisor not found: looked at " + ", ".join(candidates) + " and in $PATH; "
        "pass supervisor=PATH or set KILN_SUPERVISOR"
    )


def _tool_flags(tools):
    """{name: command} as --tool NAME=COMMAND flags; a command given as a list of arguments is
    quoted so that the supervisor's shell-like split gives the same list back."""
    flags = []
    for name, command in (tools or {}).items():
        if not isinstance(command, str):
            command = " ".join(shlex.quote(os.fspath(a)) for a in command)
        flags += ["--tool", f"{name}={command}"]
    return flags


def _is_python_tool(command):
    args = shlex.split(command) if isinstance(command, str) else [os.fspath(a) for a in command]
    return any(a == "-m" and b == "kiln.tool" for a, b in zip(args, args[1:]))


def _zygote_flags(tools, zygote):
    """--zygote NAME for the tools forked from a zygote: zygote=True (the default) means every
    Python tool (`-m kiln.tool`), False none, a collection of names those tools."""
    if zygote is True:
        names = [name for name, command in (tools or {}).items() if _is_python_tool(command)]
    else:
        names = list(zygote or ())
    return [flag for name in names for flag in ("--zygote", name)]


def _option_flags(options):
    """Keyword options as supervisor flags: job_timeout_ms=500 -> --job-timeout-ms 500,
    enable_selftest=True -> --enable-selftest; False and None leave a flag out."""
    flags = []
    for name, value in options.items():
        if name in _RESERVED_OPTIONS:
            raise ValueError(f"option {name!r} is set by kiln.Pool itself")
        if value is None or value is False:
            continue
        flags.append("--" + name.replace("_", "-"))
        if value is not True:
            flags.append(os.fspath(value) if isinstance(value, os.PathLike) else str(value))
    return flags



def command(supervisor, tools, zygote, options):
    """The supervisor's command line, but for the link's fds, which start() adds: the binary
    (_find_supervisor), then its options, tools and zygotes as flags."""
    argv = [_find_supervisor(supervisor)]
    argv += _option_flags(options) + _tool_flags(tools)
    argv += _zygote_flags(tools, zygote)
    return argv


def start(argv, env, stderr):
    """Starts `argv` as a supervisor of our own on a pipe pair: (its Popen, the fd we read it
    from, the fd we write it to). Its ends of the pipes are closed here once it holds them."""
    to_sup_r, to_sup_w = os.pipe()
    from_sup_r, from_sup_w = os.pipe()
    argv = argv + ["--read-fd", str(to_sup_r), "--write-fd", str(from_sup_w)]
    try:
        proc = subprocess.Popen(
            argv,
            pass_fds=(to_sup_r, from_sup_w),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    except BaseException:
        for fd in (to_sup_r, to_sup_w, from_sup_r, from_sup_w):
            os.close(fd)
        raise
    os.close(to_sup_r)
    os.close(from_sup_w)
    log.debug("started %s as pid %d", argv[0], proc.pid)
    return proc, from_sup_r, to_sup_w


def stop(proc, kill, timeout=None):
    """Waits for (or kills) a supervisor of our own; its exit status, None for a daemon (no
    proc)."""
    if proc is None:
        return None
    if kill and proc.poll() is None:
        proc.kill()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.error("kiln-supervisor pid %d did not exit in %s s; killing it", proc.pid, timeout)
        proc.kill()
        return proc.wait()


def connect(path, timeout):
    """A socket connected to the daemon serving `path`, once it is known to be this user's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
        sock.settimeout(None)
        _check_peer_is_this_user(sock, path)
    except BaseException:
        sock.close()
        raise
    return sock


def _check_peer_is_this_user(sock, path):
    """Refuse a socket that another user serves, before sending it anything: whoever can put a
    socket at `path` would otherwise get every job and could answer with forged results."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise PermissionError(
            f"{os.fspath(path)} is served by uid {uid} (pid {pid}), not by this user "
            f"(uid {os.getuid()}): refusing to use it"
        )

