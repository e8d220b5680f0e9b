"""Writes the seed corpora of the fuzz targets into corpus/<target>/: every frame of
tests/data/protocol-vectors.json (whole frames for the frame reader, bodies for the decoders) and
hand-written examples of kiln run's JSON lines and of compile databases. Inputs that the fuzzers
found to crash are added beside them by hand as regression-<what>; this script keeps those.

    python3 tests/fuzz/make_corpus.py [path/to/protocol-vectors.json]
"""

import hashlib
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
vectors_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "..", "data", "protocol-vectors.json")
vectors = json.load(open(vectors_path))


def put(target, data, name=None):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    name = name or "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for kind in ("valid", "invalid"):
    for v in vectors[kind]:
        frame = bytes.fromhex(v["frame_hex"])
        put("frame", b"\x07" + frame)  # first byte: the split seed
        body = frame[4:]
        if len(body) > 0:
            put("client_decode" if v["link"] == "client" else "worker_decode", body)
# Two frames in one stream, one byte at a time.
valid = [bytes.fromhex(v["frame_hex"]) for v in vectors["valid"]]
put("frame", b"\x01" + valid[0] + valid[1])

for line in [
    '{"kind": "echo", "payload": {"a": [1, 2.5, null, true, "x"]}}',
    '{"argv": ["cc", "-c", "a.c"], "cwd": "/src", "env": {"A": "1"}, "stdin": "x", "clear_env": true}',
    '{"kind": "selftest", "payload": {"action": "sleep", "ms": 10}, "timeout_ms": 5, "priority": -3}',
    '{"argv": "not a list"}',
    '{"kind": 7}',
    '[1, 2]',
    '{"argv": ["a"], "env": {"A": 1}}',
    '{"kind": "echo", "payload": {"big": 18446744073709551615, "neg": -9223372036854775808}}',
    'not json',
]:
    put("job_line", line.encode())

for db in [
    [{"directory": "/src", "arguments": ["cc", "-c", "a.c"], "file": "a.c"}],
    [{"directory": "/src", "command": "cc -DX='a b' -c \"b c.c\" -o b.o", "file": "b c.c"}],
    [{"directory": "/src", "command": "cc 'unterminated", "file": "c.c"}],
    [{"directory": "/src", "file": "d.c"}],
    {"not": "an array"},
    [{"directory": "/src", "arguments": [], "file": "e.c"}],
    [{"directory": "/src", "command": "cc \\\n -c f.c $HOME `x` \"$(y)\"", "file": "f.c"}],
]:
    put("compile_db", json.dumps(db).encode())
