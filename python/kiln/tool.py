"""The Python tool: `python3 -m kiln.tool [--preload MODULE]... [--sys-path DIR]...
[--initializer FILE]`, a warm interpreter that runs pickled Python callables for kiln-worker
(docs/protocol.md "The Python tool"), the job PyTorch Inductor's SubprocPool does.

kiln-worker starts it with the tool link on fds 3 (jobs in) and 4 (results out), and its stdout
and stderr going to the supervisor's log. Before it says `ready` it puts the --sys-path entries
first on sys.path, imports every --preload module (the warm state: a compiler stack imported
once), and calls the initializer. Each job's payload is a pickle of (fn, args, kwargs); its value
is a pickle of what fn returned; what fn raises comes back with its traceback and, in error.data,
itself pickled, so that the client raises it again as it was.
"""

import faulthandler
import importlib
import io
import os
import pickle
import signal
import sys

from . import _calls, _wire

_COMMANDS_FD = 3
_EVENTS_FD = 4


def _pickled_exception(exc):
    """The exception, pickled so that the client can raise it again; a stand-in that keeps its
    type's name and message when the exception itself cannot be pickled or loaded back."""
    try:
        data = _calls.dumps(exc)
        pickle.loads(data)  # an exception whose __init__ takes other arguments fails here
        return data
    except Exception:  # noqa: BLE001 - any failure means: send the stand-in
        return pickle.dumps(RuntimeError(_calls.summary(exc)))


def run_job(payload):
    """One job's result map (without id): the call's pickled value, or its failure."""
    if not isinstance(payload, bytes):
        return _failure("bad_payload", f"payload: expected bin, got {type(payload).__name__}")
    try:
        fn, args, kwargs = pickle.loads(payload)
    except Exception as e:  # noqa: BLE001 - whatever the bytes were, the job says so
        return _failure("bad_payload", f"payload: cannot unpickle (fn, args, kwargs): {_calls.summary(e)}")
    try:
        value = fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - SystemExit and the like end the call, not us
        return _failure("job_failed", _calls.summary(e), _traceback(), _pickled_exception(e))
    try:
        return {"ok": True, "value": _calls.dumps(value)}
    except Exception as e:  # noqa: BLE001
        return _failure("job_failed", f"the return value cannot be pickled: {_calls.summary(e)}",
                        _traceback(), _pickled_exception(e))


def _traceback():
    import traceback  # imported once something fails, not on the way to ready

    return traceback.format_exc()


def _failure(code, message, detail=None, data=None):
    error = {"code": code, "message": message}
    if detail is not None:
        error["detail"] = detail
    if data is not None:
        error["data"] = data
    return {"ok": False, "error": error}


def _write_all(data):
    view = memoryview(data)
    while view:
        view = view[os.write(_EVENTS_FD, view):]


def send(message):
    _write_all(_wire.encode(message))


def serve(max_frame=_wire.DEFAULT_MAX_FRAME):
    """Says ready, then runs jobs until shutdown or end of input. Returns the exit status."""
    send({"type": "ready", "protocol": _wire.PROTOCOL_VERSION, "pid": os.getpid()})
    reader = _wire.FrameReader(max_frame)
    while True:
        data = os.read(_COMMANDS_FD, 1 << 16)
        if not data:
            return 0
        for body in reader.feed(data):
            message = _wire.decode(body, _wire.TOOL_COMMANDS)
            if message["type"] == "shutdown":
                return 0
            result = run_job(message["payload"])
            result.update(type="result", id=message["id"])
            try:
                frame = _wire.encode(result, max_frame)
            except ValueError as e:
                frame = _wire.encode({"type": "result", "id": message["id"],
                                      **_failure("job_failed", str(e))})
            _write_all(frame)


def _warm_up(args, each=lambda what: None):
    """Imports and initializes; each(what) after each step (the zygote checks them)."""
    for entry in reversed(args.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    for module in args.preload:
        importlib.import_module(module)
        each(f"importing {module}")
    # What loading a function pickled by value needs, imported now rather than in the first job.
    importlib.import_module("cloudpickle")
    each("importing cloudpickle")
    if args.initializer:
        with open(args.initializer, "rb") as f:
            initializer, initargs = pickle.load(f)
        initializer(*initargs)
        each("the initializer")


_USAGE = """usage: python3 -m kiln.tool [--preload MODULE]... [--sys-path DIR]... [--initializer FILE]

Kiln's Python tool: runs pickled (fn, args, kwargs) jobs for kiln-worker
(kiln-supervisor --tool NAME='python3 -m kiln.tool ...').

  --preload MODULE    import MODULE before ready (repeatable)
  --sys-path DIR      put DIR first on sys.path before the imports (repeatable)
  --initializer FILE  a file holding a pickle of (fn, args): fn(*args) is called once before
                      ready; if it raises, the tool exits 1 with its traceback
"""


def _usage_error(why):
    print(f"python3 -m kiln.tool: {why}\n{_USAGE}", file=sys.stderr, end="")
    raise SystemExit(2)


class _Args:
    """The command line, parsed by hand: argparse costs the tool 10 ms on its way to ready."""

    def __init__(self, argv):
        self.preload, self.sys_path, self.initializer = [], [], None
        it = iter(argv)
        for arg in it:
            if arg in ("-h", "--help"):
                raise SystemExit(print(_USAGE, end="") or 0)
            name, eq, value = arg.partition("=")
            if name not in ("--preload", "--sys-path", "--initializer"):
                _usage_error(f"unknown argument {arg!r}")
            if not eq:
                value = next(it, None)
                if value is None:
                    _usage_error(f"{name} needs a value")
            if name == "--preload":
                self.preload.append(value)
            elif name == "--sys-path":
                self.sys_path.append(value)
            else:
                self.initializer = value


def main(argv=None):
    args = _Args(sys.argv[1:] if argv is None else argv)
    if "KILN_TOOL" not in os.environ:
        print("python3 -m kiln.tool is a kiln tool: kiln-worker starts it (kiln-supervisor "
              "--tool NAME=COMMAND) with the tool link on fds 3 and 4", file=sys.stderr)
        return 3
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    # Output goes to the log line by line, as it is written.
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    try:
        if "KILN_ZYGOTE" in os.environ:  # one warm-up for the pool, each tool forked from it
            from . import _zygote

            return _zygote.main(args, _warm_up, serve)
        _warm_up(args)
    except BaseException:  # noqa: BLE001 - the worker reports it; we only print and exit
        sys.stderr.write(_traceback())
        return 1
    return serve()


if __name__ == "__main__":
    sys.exit(main())
