"""The client link of docs/protocol.md: frames, message checks, and the build key's id.

Everything here is pure (no I/O), so it is tested against tests/data/protocol-vectors.json on its
own. The supervisor is trusted less than it could be: a frame it sends is bounded before it is
buffered, and a message that breaks the protocol is an error, never a guess.
"""

import struct

import msgpack

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame or message that breaks docs/protocol.md."""


def key_id(key: bytes) -> str:
    """The first 16 hex digits of BLAKE2b-256 of the key: what hello and ready carry."""
    import hashlib  # here, not at the top: the Python tool imports this module and never needs it

    return hashlib.blake2b(key, digest_size=32).hexdigest()[:16]


def encode_key(key: bytes) -> str:
    """The key as KILN_KEY carries it: standard base64 with padding."""
    import base64

    return base64.b64encode(key).decode("ascii")


def encode(message: dict, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """One whole frame holding `message`. ValueError if its body would exceed max_frame."""
    body = msgpack.packb(message, use_bin_type=True)
    if len(body) > max_frame:
        raise ValueError(f"message of {len(body)} bytes exceeds the frame limit of {max_frame}")
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Takes bytes as they arrive, in any split, and yields whole frame bodies.

    A length of 0 or above max_frame is rejected as soon as its four header bytes are in, before
    any of the body is buffered.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME):
        self._max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes):
        self._buf += data
        bodies = []
        # Frames are read at an offset and the consumed bytes dropped once at the end: deleting
        # each frame from the front moved the rest every time, quadratic in a read of many frames.
        pos = 0
        while len(self._buf) - pos >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._buf, pos)
            if length == 0:
                raise ProtocolError("frame length 0")
            if length > self._max_frame:
                raise ProtocolError(f"frame length {length} exceeds max_frame {self._max_frame}")
            end = pos + _HEADER.size + length
            if len(self._buf) < end:
                break
            bodies.append(bytes(self._buf[pos + _HEADER.size : end]))
            pos = end
        del self._buf[:pos]
        return bodies

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame held back (end of input here means a cut-off frame)."""
        return len(self._buf)


# Field checks. Booleans are ints in Python, so every integer check excludes them first.
def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str(v):
    return isinstance(v, str)


def _is_bool(v):
    return isinstance(v, bool)


def _is_any(_):
    return True


def _is_str_list(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_error(v):
    return (
        isinstance(v, dict)
        and isinstance(v.get("code"), str)
        and isinstance(v.get("message"), str)
        and isinstance(v.get("detail", ""), str)
        and isinstance(v.get("data", b""), bytes)
    )


_TYPE_NAMES = {
    _is_uint: "uint",
    _is_int: "int",
    _is_str: "str",
    _is_bool: "bool",
    _is_any: "any",
    _is_str_list: "array of str",
    _is_error: "map {code: str, message: str, detail?: str, data?: bin}",
}

# type -> {field: (check, required)}, for both directions of the client link.
_CLIENT_TO_SUPERVISOR = {
    "submit": {
        "id": (_is_uint, True),
        "kind": (_is_str, True),
        "payload": (_is_any, True),
        "timeout_ms": (_is_uint, False),
        "priority": (_is_int, False),
        "notify_started": (_is_bool, False),
    },
    "cancel": {"id": (_is_uint, True)},
    "quiesce": {},
    "wakeup": {},
    "stats": {},
    "shutdown": {"drain": (_is_bool, False)},
    "trace": {"file": (_is_str, False)},
}
_SUPERVISOR_TO_CLIENT = {
    "hello": {
        "protocol": (_is_uint, True),
        "server": (_is_str, True),
        "pid": (_is_uint, True),
        "workers": (_is_uint, True),
        "kinds": (_is_str_list, True),
        "key_id": (_is_str, True),
    },
    "result": {
        "id": (_is_uint, True),
        "ok": (_is_bool, True),
        "value": (_is_any, False),
        "error": (_is_error, False),
        "worker_pid": (_is_uint, False),
        "queue_us": (_is_uint, True),
        "run_us": (_is_uint, True),
    },
    "status": {
        "id": (_is_uint, True),
        "elapsed_ms": (_is_uint, True),
        "worker_pid": (_is_uint, True),
        "phase": (_is_str, False),
    },
    "started": {"id": (_is_uint, True), "worker_pid": (_is_uint, True)},
    # Stats is a flat map that may grow; only its type is fixed.
    "stats": {},
    "error": {"code": (_is_str, True), "message": (_is_str, True)},
    "bye": {},
    "traced": {"file": (_is_str, False), "error": (_is_str, False)},
}
CLIENT_LINK = {**_CLIENT_TO_SUPERVISOR, **_SUPERVISOR_TO_CLIENT}
FROM_SUPERVISOR = _SUPERVISOR_TO_CLIENT

# The tool link (docs/protocol.md "Tool link"), both directions.
TOOL_COMMANDS = {
    "job": {"id": (_is_uint, True), "payload": (_is_any, True), "timeout_ms": (_is_uint, True)},
    "shutdown": {},
}
TOOL_EVENTS = {
    "ready": {"protocol": (_is_uint, True), "pid": (_is_uint, True)},
    "phase": {"id": (_is_uint, True), "phase": (_is_str, True)},
    "result": {
        "id": (_is_uint, True),
        "ok": (_is_bool, True),
        "value": (_is_any, False),
        "error": (_is_error, False),
    },
}


# The zygote link (docs/protocol.md "Zygote link"): what a zygote receives, and what it sends.
ZYGOTE_REQUESTS = {"fork": {"worker": (_is_uint, True)}}
ZYGOTE_EVENTS = {
    "forked": {"pid": (_is_uint, True)},
    "refused": {"message": (_is_str, True)},
    "exited": {"pid": (_is_uint, True), "status": (_is_uint, True), "signal": (_is_uint, True)},
}

_PLAIN_RESULT_KEYS = frozenset({"type", "id", "ok", "value", "worker_pid", "queue_us", "run_us"})


def _is_plain_result(m):
    """A successful result with the usual keys, each of its type: most of what a client reads.
    Exactly what decode's general checks accept of such a map; anything else goes through those
    (which say what is wrong)."""
    if m.get("type") != "result" or m.get("ok") is not True or not _PLAIN_RESULT_KEYS.issuperset(m):
        return False
    for name in ("id", "queue_us", "run_us", "worker_pid"):
        v = m.get(name, 0)
        if type(v) is not int or v < 0:
            return False
    return "id" in m and "queue_us" in m and "run_us" in m


def decode(body: bytes, allowed=CLIENT_LINK) -> dict:
    """The message in one frame body, checked against `allowed` (type -> field checks).

    Raises ProtocolError for everything docs/protocol.md calls a protocol error: not exactly one map,
    keys that are not str, a missing or unknown type, a required field missing or mistyped.
    """
    try:
        # Element counts are bounded by the body's own length (msgpack's default since 1.0), so a
        # count declared far beyond the bytes present fails before anything is allocated.
        message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as e:
        # ExtraData (trailing bytes), FormatError, StackError (nesting) and truncation all land
        # here.
        why = str(e) or type(e).__name__  # FormatError and StackError carry no text
        raise ProtocolError(f"body is not exactly one msgpack object: {why}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"body is a {type(message).__name__}, not a map")
    if allowed is FROM_SUPERVISOR and _is_plain_result(message):
        return message  # the checks below would pass it: the common case, done in one pass
    for k in message:
        if not isinstance(k, str):
            raise ProtocolError(f"map key {k!r} is not a str")
    kind = message.get("type")
    if kind is None:
        raise ProtocolError("message has no type")
    if not isinstance(kind, str):
        raise ProtocolError(f"type is a {type(kind).__name__}, not a str")
    fields = allowed.get(kind)
    if fields is None:
        raise ProtocolError(f"unexpected message type {kind!r}")
    for name, (check, required) in fields.items():
        if name not in message:
            if required:
                raise ProtocolError(f"{kind}.{name}: missing")
        elif not check(message[name]):
            raise ProtocolError(
                f"{kind}.{name}: expected {_TYPE_NAMES[check]}, got {type(message[name]).__name__}"
            )
    if kind == "result" and message["ok"] is False and "error" not in message:
        raise ProtocolError("result.error: missing (required when ok is false)")
    return message
