"""The wire format of comlink_ipc_v4: message maps, msgpack encoding and receive limits.

Everything here is pure (no sockets), so it can be tested on its own. The rules are those
of the shared PROTOCOL.md, sections 2 and 3.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Dict, Optional

import msgpack

APP_NAME = "comlink_ipc_v4"
DEFAULT_NAMESPACE = "default"

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

# Receive limits, the same as the other implementations (PROTOCOL.md section 3).
MAX_STR_BIN = 10 * 1024 * 1024
MAX_ITEMS = 100_000
# msgpack's C decoder stops at 1024 levels of nesting by itself. Results are bounded at the
# 256 levels a Rust parent accepts (msgpack could encode 511), so a too-deep result gets a
# clear error here rather than a decoding failure over there.
MAX_RESULT_DEPTH = 256
# A whole message; a larger one is answered with an error without decoding its body.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Message types.
CALL = "call"
RESPONSE = "response"
ERROR = "error"
STDOUT = "stdout"
STDERR = "stderr"
HEARTBEAT = "heartbeat"
SHUTDOWN = "shutdown"


class MessageRejected(ValueError):
    """A received message broke a limit or could not be decoded.

    ``fields`` holds what could still be read from its top level (``id``, ``type``, ...), so
    that a call can be answered with an error rather than left to time out.
    """

    def __init__(self, reason: str, fields: Optional[Dict[str, Any]] = None):
        super().__init__(reason)
        self.reason = reason
        self.fields = fields or {}


def now() -> float:
    return time.time()


def new_id() -> str:
    return str(uuid.uuid4())


def pack(message: Dict[str, Any]) -> bytes:
    """msgpack with bytes as bin and str as str."""
    return msgpack.packb(message, use_bin_type=True)


def envelope(msg_id: str, msg_type: str) -> Dict[str, Any]:
    return {"app": APP_NAME, "id": msg_id, "type": msg_type, "timestamp": now(), "metadata": {}}


def _limited_unpacker_options() -> Dict[str, Any]:
    return {
        "raw": False,
        "strict_map_key": True,
        "max_str_len": MAX_STR_BIN,
        "max_bin_len": MAX_STR_BIN,
        "max_ext_len": MAX_STR_BIN,
        "max_array_len": MAX_ITEMS,
        "max_map_len": MAX_ITEMS,
    }


def decode(payload: bytes) -> Dict[str, Any]:
    """Decode a received payload within the limits.

    Raises MessageRejected (with whatever top-level fields could be salvaged) when the payload
    breaks a limit, is not msgpack, is not a map, or has a non-string key.
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        raise MessageRejected(
            f"message of {len(payload)} bytes exceeds the limit of {MAX_MESSAGE_BYTES} bytes",
            salvage_fields(payload),
        )
    try:
        message = msgpack.unpackb(payload, **_limited_unpacker_options())
    except Exception as e:  # msgpack raises ValueError, TypeError, ExtraData, StackError...
        raise MessageRejected(_describe_decode_error(e), salvage_fields(payload)) from None
    if not isinstance(message, dict):
        raise MessageRejected(f"payload is a {type(message).__name__}, not a map")
    return message


def _describe_decode_error(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if "Unpack failed: error = -3" in text or type(error).__name__ == "StackError":
        return "nesting deeper than the decoder's limit of 1024 levels"
    if "is not allowed for map key" in text:
        return f"a map key that is not a string ({text})"
    return text


# Top-level fields worth reading from a rejected message: enough to address an error reply.
_ROUTING_KEYS = ("app", "id", "type", "namespace", "function")


def salvage_fields(payload: bytes) -> Dict[str, Any]:
    """Read the small routing fields of a message that failed to decode as a whole.

    Walks the top-level map entry by entry, skipping (not building) the other values, and
    stops at the first thing it cannot read. Never raises.
    """
    fields: Dict[str, Any] = {}
    try:
        unpacker = msgpack.Unpacker(max_buffer_size=max(len(payload), 1),
                                    **_limited_unpacker_options())
        unpacker.feed(payload)
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key in _ROUTING_KEYS:
                fields[key] = unpacker.unpack()
            else:
                unpacker.skip()
    except Exception:
        pass
    return fields


def prepare_result(value: Any, function: str) -> Any:
    """The result as it goes on the wire, following PROTOCOL.md section 3.

    NaN and infinities become nil, tuples become arrays and map keys become strings, like the
    upstream Python implementation. An integer outside i64 is never clamped: it raises
    OverflowError (and a result nested too deep ValueError), so the caller gets an error reply.
    """
    return _prepare(value, function, 0)


def _prepare(value: Any, function: str, depth: int) -> Any:
    if depth > MAX_RESULT_DEPTH:
        raise ValueError(
            f"the result of '{function}' is nested deeper than {MAX_RESULT_DEPTH} levels"
        )
    kind = type(value)
    if kind is str or kind is bytes or kind is bool or value is None:
        return value
    if kind is int:
        if value < I64_MIN or value > I64_MAX:
            raise OverflowError(
                f"the result of '{function}' holds the integer {value}, outside the i64 range; "
                "send it as a string or bytes instead"
            )
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_prepare(item, function, depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            (key if type(key) is str else str(key)): _prepare(item, function, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):  # bool subclasses
        return bool(value)
    if isinstance(value, int):  # IntEnum and other int subclasses
        return _prepare(int(value), function, depth)
    if isinstance(value, float):
        return _prepare(float(value), function, depth)
    if isinstance(value, str):
        return str(value)
    # Anything else (ExtType, msgpack Timestamp, ...) is left to msgpack, which raises a
    # TypeError for what it cannot encode; that becomes an error reply too.
    return value


def response(msg_id: str, result: Any) -> Dict[str, Any]:
    reply = envelope(msg_id, RESPONSE)
    # Like the upstream Python implementation, a None result leaves the key out.
    if result is not None:
        reply["result"] = result
    return reply


def error(msg_id: str, text: str) -> Dict[str, Any]:
    reply = envelope(msg_id, ERROR)
    reply["error"] = text
    return reply


def heartbeat_reply(message: Dict[str, Any]) -> Dict[str, Any]:
    """Same id, the original hb_timestamp, and hb_response: true."""
    metadata = message.get("metadata")
    stamp = metadata.get("hb_timestamp") if isinstance(metadata, dict) else None
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        stamp = now()
    reply = envelope(message.get("id") or new_id(), HEARTBEAT)
    reply["metadata"] = {"hb_timestamp": stamp, "hb_response": True}
    return reply


def output(stream: str, text: str) -> Dict[str, Any]:
    message = envelope(new_id(), stream)
    message["output"] = text
    return message
