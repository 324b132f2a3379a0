#!/usr/bin/env python3
"""Writes Python-parent messages to the fuzz seed corpus, packed exactly as the Python peer
(tests/python/comlink_peer.py, which behaves like the Python implementation) packs them:
calls with ints, floats (NaN and Inf unsanitised), uint64, bytes, nested values, user metadata,
a heartbeat and a shutdown.

    target/pyenv/bin/python fuzz/gen_python_seeds.py fuzz/seeds
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python"))
import comlink_peer as peer  # noqa: E402


def call(function, *args, namespace="default", metadata=None):
    meta = {"timestamp_sent": peer.now()}
    meta.update(metadata or {})
    return {
        "app": peer.APP, "id": peer.new_id(), "type": "call", "timestamp": peer.now(),
        "function": function, "args": list(args), "namespace": namespace, "metadata": meta,
    }


def main(out):
    os.makedirs(out, exist_ok=True)
    messages = {
        "add_ints": call("add", 1, 2),
        "add_floats": call("add", 1.5, -2.25),
        "add_nan_inf": call("add", float("nan"), float("inf")),
        "echo_uint64": call("echo", 2**64 - 1),
        "echo_i64_min": call("echo", -(2**63)),
        "echo_bytes": call("echo", b"\x00\x01\xff" * 10),
        "echo_nested": call("echo", {"a": [1, 2.5, None, True, "x"], "b": {"c": [b"y"]}}),
        "echo_unicode": call("echo", "h\u00e9llo \u2603 \U0001F600"),
        "echo_correlated": call("echo", 7, metadata={"correlation_id": "c-1", "parent_request_id": "p-9", "user": [1, 2]}),
        "other_namespace": call("add", 1, 2, namespace="elsewhere"),
        "nil_namespace": call("add", 1, 2, namespace=None),
        "no_args": call("get_info"),
        "heartbeat": {"app": peer.APP, "id": peer.new_id(), "type": "heartbeat", "timestamp": peer.now(),
                      "metadata": {"hb_timestamp": peer.now()}},
        "shutdown": {"app": peer.APP, "id": peer.new_id(), "type": "shutdown", "timestamp": peer.now()},
    }
    for name, message in messages.items():
        with open(os.path.join(out, f"python_parent_{name}.msgpack"), "wb") as f:
            f.write(peer.pack(message))
    print(f"gen_python_seeds: wrote {len(messages)} seeds to {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/seeds")
