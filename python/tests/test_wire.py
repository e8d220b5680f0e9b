"""kiln._wire against tests/data/protocol-vectors.json: every valid client-link frame decodes to
what the vectors expect, every invalid one is a ProtocolError, in any split of its bytes."""

import json
import os

import pytest

from kiln import _wire

VECTORS_PATH = os.environ.get(
    "KILN_PROTOCOL_VECTORS",
    os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "protocol-vectors.json"),
)
with open(VECTORS_PATH) as f:
    VECTORS = json.load(f)
MAX_FRAME = VECTORS["max_frame"]


def client_link(kind):
    return [v for v in VECTORS[kind] if v["link"] == "client"]


def from_expect(value):
    """The vectors' JSON form of a value as Python's msgpack decodes it ({"$bin": hex} -> bytes)."""
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_expect(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_expect(v) for v in value]
    return value


def decode_frame(frame, split=None):
    reader = _wire.FrameReader(MAX_FRAME)
    bodies = []
    step = split or len(frame)
    for i in range(0, len(frame), step):
        bodies += reader.feed(frame[i : i + step])
    assert reader.pending == 0, "a whole frame leaves nothing behind"
    assert len(bodies) == 1
    return _wire.decode(bodies[0])


def test_the_vectors_cover_both_kinds():
    assert len(client_link("valid")) == 31
    assert len(client_link("invalid")) == 31
    assert len(tool_link("valid")) == 7
    assert len(tool_link("invalid")) == 6
    assert len(zygote_link("valid")) == 4
    assert len(zygote_link("invalid")) == 3


def zygote_link(kind):
    return [v for v in VECTORS[kind] if v["link"] == "zygote"]


def decode_zygote(body):
    accepted, errors = [], []
    for allowed in (_wire.ZYGOTE_REQUESTS, _wire.ZYGOTE_EVENTS):
        try:
            accepted.append(_wire.decode(body, allowed))
        except _wire.ProtocolError as e:
            errors.append(e)
    return accepted, errors


@pytest.mark.parametrize("vector", zygote_link("valid"), ids=lambda v: v["name"])
def test_valid_zygote_link_frames_decode_one_way(vector):
    (body,) = _wire.FrameReader(MAX_FRAME).feed(bytes.fromhex(vector["frame_hex"]))
    accepted, _ = decode_zygote(body)
    assert len(accepted) == 1
    assert {k: accepted[0][k] for k in vector["expect"]} == vector["expect"]


@pytest.mark.parametrize("vector", zygote_link("invalid"), ids=lambda v: v["name"])
def test_invalid_zygote_link_frames_are_refused_both_ways(vector):
    (body,) = _wire.FrameReader(MAX_FRAME).feed(bytes.fromhex(vector["frame_hex"]))
    accepted, _ = decode_zygote(body)
    assert accepted == []


def tool_link(kind):
    return [v for v in VECTORS[kind] if v["link"] == "tool"]


def decode_tool(body):
    """Decoded as the side that receives it would: exactly one of the two must accept it."""
    accepted, errors = [], []
    for allowed in (_wire.TOOL_COMMANDS, _wire.TOOL_EVENTS):
        try:
            accepted.append(_wire.decode(body, allowed))
        except _wire.ProtocolError as e:
            errors.append(e)
    return accepted, errors


@pytest.mark.parametrize("vector", tool_link("valid"), ids=lambda v: v["name"])
def test_valid_tool_link_frames_decode_one_way(vector):
    (body,) = _wire.FrameReader(MAX_FRAME).feed(bytes.fromhex(vector["frame_hex"]))
    accepted, _ = decode_tool(body)
    assert len(accepted) == 1
    expect = from_expect(vector["expect"])
    assert {k: accepted[0][k] for k in expect} == expect


@pytest.mark.parametrize("vector", tool_link("invalid"), ids=lambda v: v["name"])
def test_invalid_tool_link_frames_are_refused_both_ways(vector):
    (body,) = _wire.FrameReader(MAX_FRAME).feed(bytes.fromhex(vector["frame_hex"]))
    accepted, errors = decode_tool(body)
    assert accepted == []
    assert len(errors) == 2


@pytest.mark.parametrize("vector", client_link("valid"), ids=lambda v: v["name"])
def test_valid_frames_decode_to_what_they_expect(vector):
    frame = bytes.fromhex(vector["frame_hex"])
    expect = from_expect(vector["expect"])
    for split in (None, 1, 3):
        message = decode_frame(frame, split)
        assert {k: message[k] for k in expect} == expect


@pytest.mark.parametrize("vector", client_link("invalid"), ids=lambda v: v["name"])
def test_invalid_frames_are_protocol_errors(vector):
    frame = bytes.fromhex(vector["frame_hex"])
    with pytest.raises(_wire.ProtocolError, match=r"\S"):
        reader = _wire.FrameReader(MAX_FRAME)
        for body in reader.feed(frame):
            _wire.decode(body)
        # A frame cut short is not a message: the reader must still be waiting for it.
        if reader.pending:
            raise _wire.ProtocolError("frame cut short")


def test_a_too_long_frame_is_refused_from_its_header_alone():
    reader = _wire.FrameReader(4096)
    with pytest.raises(_wire.ProtocolError, match="4097 exceeds max_frame 4096"):
        reader.feed((4097).to_bytes(4, "big"))


def test_encode_then_decode_round_trips_and_respects_max_frame():
    message = {"type": "submit", "id": 2**64 - 1, "kind": "echo", "payload": {"b": b"\x00\xff"}}
    assert decode_frame(_wire.encode(message)) == message
    with pytest.raises(ValueError, match="exceeds the frame limit of 4096"):
        _wire.encode({"type": "submit", "id": 1, "kind": "echo", "payload": b"x" * 5000}, 4096)


def test_decode_names_the_field_and_the_types():
    body = _wire.encode({"type": "result", "id": "7", "ok": True, "queue_us": 0, "run_us": 0})[4:]
    with pytest.raises(_wire.ProtocolError, match=r"^result\.id: expected uint, got str$"):
        _wire.decode(body)
    body = _wire.encode({"type": "result", "id": 7, "ok": 1, "queue_us": 0, "run_us": 0})[4:]
    with pytest.raises(_wire.ProtocolError, match=r"^result\.ok: expected bool, got int$"):
        _wire.decode(body)


def test_the_supervisor_may_not_send_client_messages():
    body = _wire.encode({"type": "submit", "id": 1, "kind": "echo", "payload": None})[4:]
    assert _wire.decode(body)["type"] == "submit"
    with pytest.raises(_wire.ProtocolError, match="unexpected message type 'submit'"):
        _wire.decode(body, _wire.FROM_SUPERVISOR)


def test_key_id_is_blake2b_256_truncated():
    assert _wire.key_id(b"kiln") == "eac7579295a99dff"
    assert _wire.encode_key(b"kiln") == "a2lsbg=="


def test_a_read_of_many_frames_costs_linear_time():
    """300,000 frames in one read: each is taken at an offset, not deleted from the front (which
    moved the rest of a 3 MB buffer 300,000 times)."""
    frame = _wire.encode({"type": "bye"})
    reader = _wire.FrameReader(MAX_FRAME)
    bodies = reader.feed(frame * 300_000 + frame[:3])
    assert len(bodies) == 300_000
    assert reader.pending == 3, "the cut-off frame's bytes wait for the rest"
    assert reader.feed(frame[3:]) == [frame[4:]]
    assert reader.pending == 0
