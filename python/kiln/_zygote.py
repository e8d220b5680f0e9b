"""The Python tool's zygote (docs/protocol.md "Zygote link"): one interpreter per pool that
imports the tool's --preload modules and runs its --initializer once, then forks every worker's
tool from that warm state, as CPython's multiprocessing.forkserver and Inductor's SubprocPool
sidecar do.

kiln-supervisor starts it as the tool's own command with KILN_ZYGOTE=<its pid> and a listening
Unix socket on fd 3. A worker connects, sends `fork` with its tool link's fds (SCM_RIGHTS), and
gets `forked` with a pidfd of its tool; when the tool has ended and the worker has closed its
side, the zygote reaps it and sends `exited`. The zygote is one thread with one poll loop, so
that nothing it runs is caught mid-way by a fork.
"""

import array
import fcntl
import gc
import os
import select
import signal
import socket
import struct
import sys
import threading

from . import _wire

_LISTENER_FD = 3
_FORK_FDS = 5  # stdin, output, commands, events, a pidfd of the worker
_REQUEST_TIMEOUT_S = 5.0


def _thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _threads_through_a_fork():
    """The threads left after a probe fork: a thread pool that stops itself for a fork (its
    pthread_atfork handler joins it, as OpenBLAS's does, which numpy and torch load) is no
    hazard; one that runs on through a fork may hold a lock that every child would inherit held."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return _thread_count()


def warm_up(args, warm):
    """Runs the tool's warm-up (`warm(args, each)`, calling each(what) after each step); returns
    why forking from this interpreter is unsafe (a step started a thread), or None."""
    threads = _thread_count()
    unsafe = []

    def each(what):
        nonlocal threads
        now = _thread_count()
        if now > threads:
            now = _threads_through_a_fork()
        if now > threads and not unsafe:
            unsafe.append(f"{what} started a thread ({now - 1} besides the main one)")
        threads = now

    warm(args, each)
    return unsafe[0] if unsafe else None


class _Child:
    """A forked tool the zygote has to reap: its worker's connection and a pidfd of it."""

    def __init__(self, pid, conn, pidfd):
        self.pid, self.conn, self.pidfd = pid, conn, pidfd
        self.exited = False  # its pidfd said so; reaped once the worker has let go too
        self.released = False  # the worker closed its side (or is gone)


class Zygote:
    def __init__(self, parent, refusal, serve_child):
        self.parent = parent
        self.refusal = refusal
        self.serve_child = serve_child
        self.listener = socket.socket(fileno=_LISTENER_FD)
        self.listener.set_inheritable(False)
        self.parent_fd = os.pidfd_open(parent)
        self.children = {}  # pidfd -> _Child
        self.conns = {}  # conn fd -> _Child

    def own_fds(self):
        """What a forked tool must not keep: the zygote's listener, links and pidfds."""
        fds = [self.listener.fileno(), self.parent_fd]
        for child in self.children.values():
            fds += [child.pidfd, child.conn.fileno()]
        return fds

    def run(self):
        if os.getppid() != self.parent:  # the supervisor died before the pidfd was open
            return 0
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        poller.register(self.parent_fd, select.POLLIN)
        while True:
            for fd, _ in poller.poll():
                if fd == self.parent_fd:
                    return 0  # the tools go on: each one watches its own worker
                if fd == self.listener.fileno():
                    self.accept(poller)
                elif fd in self.children:
                    child = self.children[fd]
                    child.exited = True
                    poller.unregister(fd)
                    self.maybe_reap(child, poller)
                elif fd in self.conns:
                    self.conn_readable(self.conns[fd], poller)

    def conn_readable(self, child, poller):
        try:
            data = child.conn.recv(4096)
        except OSError:
            data = b""
        if data:
            return  # nothing else is expected from a worker: its half-close is the word
        child.released = True
        poller.unregister(child.conn)
        self.maybe_reap(child, poller)

    def maybe_reap(self, child, poller):
        if not (child.exited and child.released):
            return
        _, status = os.waitpid(child.pid, 0)
        message = {"type": "exited", "pid": child.pid, "status": 0, "signal": 0}
        if os.WIFSIGNALED(status):
            message["signal"] = os.WTERMSIG(status)
        else:
            message["status"] = os.WEXITSTATUS(status)
        try:
            child.conn.sendall(_wire.encode(message))
        except OSError:
            pass  # the worker is gone: nobody to tell
        del self.children[child.pidfd]
        del self.conns[child.conn.fileno()]
        os.close(child.pidfd)
        child.conn.close()

    def accept(self, poller):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.set_inheritable(False)
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        fds = []
        try:
            if uid != os.getuid():
                raise ValueError(f"a peer of uid {uid}")
            conn.settimeout(_REQUEST_TIMEOUT_S)
            message, fds = _receive(conn)
            if len(fds) != _FORK_FDS:
                raise ValueError(f"{len(fds)} fds with fork, expected {_FORK_FDS}")
            if self.refusal:
                conn.sendall(_wire.encode({"type": "refused", "message": self.refusal}))
                raise ValueError(self.refusal)
            conn.settimeout(None)
            self.fork(conn, fds, poller)
        except (OSError, ValueError, _wire.ProtocolError) as e:
            if not self.refusal:
                print(f"kiln.tool zygote: refused a fork request: {e}", file=sys.stderr)
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def fork(self, conn, fds, poller):
        own = self.own_fds() + [conn.fileno()]
        pid = os.fork()
        if pid == 0:
            # The socket objects let go of their fds (closed by number in _child), so that
            # nothing closes a number that is by then another fd.
            sockets = [self.listener, conn] + [c.conn for c in self.children.values()]
            _child(fds, own, self.serve_child, lambda: [s.detach() for s in sockets])
        try:
            os.setpgid(pid, pid)  # the child does it too: whichever runs first
        except OSError:
            pass
        pidfd = os.pidfd_open(pid)
        child = _Child(pid, conn, pidfd)
        self.children[pidfd] = child
        self.conns[conn.fileno()] = child
        poller.register(pidfd, select.POLLIN)
        poller.register(conn, select.POLLIN)
        body = _wire.encode({"type": "forked", "pid": pid})
        try:
            conn.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [pidfd]))])
        except OSError:
            pass  # the worker is gone: its tool sees that and ends; reaped then


def _receive(conn):
    """One frame and the fds that came with it."""
    data, fds = b"", []
    while True:
        chunk, ancdata, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(_FORK_FDS * 4 + 16))
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(cdata[: len(cdata) - len(cdata) % got.itemsize])
                for fd in got:
                    os.set_inheritable(fd, False)
                fds += list(got)
        if not chunk:
            for fd in fds:
                os.close(fd)
            raise ValueError("the worker closed its side before its request")
        data += chunk
        if len(data) >= 4:
            (length,) = struct.unpack(">I", data[:4])
            if not 1 <= length <= 4096:
                raise ValueError(f"a frame of {length} bytes")
            if len(data) >= 4 + length:
                message = _wire.decode(data[4 : 4 + length], _wire.ZYGOTE_REQUESTS)
                return message, fds


def _watch_worker(worker_fd):
    """The tool dies with its worker, whatever it runs: its whole group with it."""
    poller = select.poll()
    poller.register(worker_fd, select.POLLIN)
    while True:
        try:
            if poller.poll():
                break
        except InterruptedError:
            continue
    os.killpg(0, signal.SIGKILL)


def _reseed():
    """Fresh random state for each tool (random itself reseeds after fork), in the generators
    the warm-up loaded: reseeding one it did not load would load it, in every tool."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()
    torch_random = sys.modules.get("torch.random")
    if torch_random is not None:
        torch_random.default_generator.seed()


def _child(fds, zygote_fds, serve_child, detach):
    """The forked tool: never returns."""
    code = 1
    try:
        detach()
        os.setpgid(0, 0)
        for fd in zygote_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        # Above 4 first, so that no dup2 below overwrites a source it has yet to copy.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
        for fd in fds:
            os.close(fd)
        stdin, output, commands, events, watch = high
        for source, target in ((stdin, 0), (output, 1), (output, 2), (commands, 3), (events, 4)):
            os.dup2(source, target)
        for fd in high[:4]:
            os.close(fd)
        os.environ.pop("KILN_ZYGOTE", None)
        _reseed()
        threading.Thread(target=_watch_worker, args=(watch,), name="kiln-watchdog",
                         daemon=True).start()
        code = serve_child()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - printed for the worker's crash report
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _die_with(parent):
    """SIGKILL when the supervisor dies, even in the middle of an import (a fork clears it: the
    tools do not die with the zygote)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


def main(args, warm, serve_child):
    """The zygote: warm up once, then fork tools until the supervisor is gone."""
    parent = int(os.environ["KILN_ZYGOTE"])
    _die_with(parent)
    refusal = warm_up(args, warm)
    if refusal:
        print(f"kiln.tool zygote: will not fork tools: {refusal}; each worker starts its tool "
              "from scratch", file=sys.stderr)
    # What the warm-up made stays where it is: the tools' reference counting then does not
    # touch (and copy) its pages at their first collection.
    gc.collect()
    gc.freeze()
    return Zygote(parent, refusal, serve_child).run()
