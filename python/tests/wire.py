"""A bare DEALER parent for the tests: spawns a worker script and speaks the protocol by hand,
so the tests see exactly what goes on the wire."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import msgpack
import zmq

APP = "comlink_ipc_v4"
HERE = os.path.dirname(os.path.abspath(__file__))
APP_WORKER = os.path.join(HERE, "app_worker.py")
TIMEOUT = 20.0  # generous: the machine may be busy


def call_message(function: Any, args: Any = (), **fields: Any) -> Dict[str, Any]:
    message = {"app": APP, "id": str(uuid.uuid4()), "type": "call", "timestamp": time.time(),
               "function": function, "args": list(args), "namespace": "default",
               "metadata": {"timestamp_sent": time.time()}}
    message.update(fields)
    return message


class Parent:
    """DEALER bound on 127.0.0.1; the worker is started with COMLINK_ZMQ_PORT.

    Replies are matched by id; stdout/stderr messages are collected in ``output`` in arrival
    order, as (type, text, frames-count, first-frame). The worker's own pipes are drained into
    ``pipe_stdout`` / ``pipe_stderr`` (they must stay empty in spawn mode).
    """

    def __init__(self, script: str = APP_WORKER, env: Optional[Dict[str, str]] = None,
                 connect_port: Optional[int] = None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.process: Optional[subprocess.Popen] = None
        self.output: List[tuple] = []
        self.replies: Dict[Any, Dict[str, Any]] = {}
        self.arrivals: List[Any] = []  # ids and ("output", text) in arrival order
        self.pipe_stdout = b""
        self.pipe_stderr = b""
        self._drains: List[threading.Thread] = []
        if connect_port is not None:
            self.sock.connect(f"tcp://127.0.0.1:{connect_port}")
            return
        self.sock.bind("tcp://127.0.0.1:*")
        port = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode().rsplit(":", 1)[1]
        child_env = dict(os.environ if env is None else env)
        child_env["COMLINK_ZMQ_PORT"] = port
        self.process = subprocess.Popen(
            [sys.executable, script], env=child_env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for name in ("stdout", "stderr"):
            thread = threading.Thread(target=self._drain, args=(name,), daemon=True)
            thread.start()
            self._drains.append(thread)

    def _drain(self, name: str) -> None:
        stream = getattr(self.process, name)
        with stream:
            setattr(self, f"pipe_{name}", stream.read())

    # -- sending and receiving -----------------------------------------------------------

    def send(self, message: Dict[str, Any]) -> Any:
        self.send_raw(msgpack.packb(message, use_bin_type=True))
        return message.get("id")

    def send_raw(self, payload: bytes) -> None:
        self.sock.send_multipart([b"", payload])

    def pump(self, timeout: float) -> bool:
        """Receive one message within timeout; False if none came."""
        if not self.sock.poll(int(timeout * 1000)):
            return False
        frames = self.sock.recv_multipart()
        message = msgpack.unpackb(frames[-1], raw=False, strict_map_key=False)
        if message.get("type") in ("stdout", "stderr"):
            self.output.append((message["type"], message.get("output"), len(frames), frames[0]))
            self.arrivals.append(("output", message.get("output")))
        else:
            self.replies[message.get("id")] = message
            self.arrivals.append(message.get("id"))
        return True

    def wait_reply(self, msg_id: Any, timeout: float = TIMEOUT) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while msg_id not in self.replies:
            left = deadline - time.monotonic()
            if left <= 0 or not self.pump(left):
                raise TimeoutError(f"no reply to {msg_id} within {timeout}s")
        return self.replies.pop(msg_id)

    def wait_until(self, condition, timeout: float = TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.2))
        return True

    def request(self, message: Dict[str, Any], timeout: float = TIMEOUT) -> Dict[str, Any]:
        return self.wait_reply(self.send(message), timeout)

    def call(self, function: Any, *args: Any, **fields: Any) -> Dict[str, Any]:
        return self.request(call_message(function, args, **fields))

    def heartbeat_message(self) -> Dict[str, Any]:
        return {"app": APP, "id": str(uuid.uuid4()), "type": "heartbeat",
                "timestamp": time.time(), "metadata": {"hb_timestamp": time.time()}}

    def wait_ready(self, timeout: float = TIMEOUT) -> None:
        """Heartbeat until one is answered (the DEALER queues the first until connected)."""
        self.request(self.heartbeat_message(), timeout)

    # -- stopping ------------------------------------------------------------------------

    def shutdown(self, timeout: float = TIMEOUT) -> int:
        self.send({"app": APP, "id": str(uuid.uuid4()), "type": "shutdown",
                   "timestamp": time.time()})
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = TIMEOUT) -> int:
        code = self.process.wait(timeout)
        for thread in self._drains:
            thread.join(timeout)
        return code

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.sock.close(0)
        self.ctx.term()


def result_of(reply: Dict[str, Any]) -> Any:
    if reply.get("type") != "response":
        raise AssertionError(f"expected a response, got {reply!r}")
    return reply.get("result")


def error_of(reply: Dict[str, Any]) -> str:
    if reply.get("type") != "error":
        raise AssertionError(f"expected an error reply, got {reply!r}")
    return reply["error"]
