#!/usr/bin/env python3
"""Python test peer for multifrost (wire protocol comlink_ipc_v4, see shared PROTOCOL.md).

One file, pyzmq + msgpack + stdlib only. It plays every role the Rust crates must
interoperate with, and behaves like the existing Python implementation, quirks included
(each deliberate quirk is marked "QUIRK" below).

Command line (a "--worker" argument is ignored anywhere in argv, except in the argument list
that the parent-* modes pass on to the child):

  comlink_peer.py worker                   child, spawn mode (needs COMLINK_ZMQ_PORT)
  comlink_peer.py                          same (so "python comlink_peer.py --worker" works)
  comlink_peer.py service <id>             child, connect mode: registers <id>, binds a ROUTER
                                           on 127.0.0.1:<port>, prints "READY <port>"
  comlink_peer.py hold-lock <seconds>      takes the registry lock the Python way, prints
                                           "LOCKED", holds it, releases, prints "RELEASED"
  comlink_peer.py register <id> [--pid P]  prints the port
  comlink_peer.py discover <id> [timeout]  prints the port, or exits 1 (message on stderr)
  comlink_peer.py unregister <id> [--pid P]
  comlink_peer.py parent-suite <executable> [args...]   spawn a child, run the suite
  comlink_peer.py parent-burst <executable> <count>      child prints <count> lines in a call
  comlink_peer.py parent-bench <json>      the benchmark's Python-parent rows (see bench())
  comlink_peer.py parent-connect-suite <port>           run the suite against a running service
  comlink_peer.py parent-discover-suite <id> [timeout]  discover <id>, then as above

Environment: COMLINK_ZMQ_PORT (spawn mode), PEER_NAMESPACE (child namespace, default
"default"), HOME (registry location: ~/.multifrost).
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import msgpack
import zmq

APP = "comlink_ipc_v4"
I64_MIN = -(2**63)
I64_MAX = 2**63 - 1

# PEER_SERIAL=1: answer heartbeats in turn with calls, as the upstream child does (it handles
# one message at a time); by default they are answered at once, even during a call.
SERIAL = os.environ.get("PEER_SERIAL") == "1"

# Limits the Python implementation enforces on receive (PROTOCOL.md section 3).
MAX_STR_BIN = 10 * 1024 * 1024
MAX_ITEMS = 100_000


def now() -> float:
    return time.time()


def new_id() -> str:
    return str(uuid.uuid4())


def pack(obj: Any) -> bytes:
    # use_bin_type=True: bytes -> msgpack bin, str -> msgpack str.
    return msgpack.packb(obj, use_bin_type=True)


def unpack_limited(data: bytes) -> Any:
    """Unpack like the Python child: over-limit input raises (the caller drops the message).

    strict_map_key=True rejects any map key that is not str or bytes, so a map with integer
    keys is dropped like the rest.
    """
    return msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=True,
        max_str_len=MAX_STR_BIN,
        max_bin_len=MAX_STR_BIN,
        max_array_len=MAX_ITEMS,
        max_map_len=MAX_ITEMS,
    )


def unpack_lenient(data: bytes) -> Any:
    """Unpack for the parent side: accept whatever the peer sends, to observe it."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def clamp_i64(value: Any) -> Any:
    """QUIRK: Python replies clamp integers outside i64 to the i64 bounds, silently."""
    if type(value) is int:  # not bool: bools are ints but are always in range anyway
        if value > I64_MAX:
            return I64_MAX
        if value < I64_MIN:
            return I64_MIN
        return value
    if isinstance(value, (list, tuple)):
        return [clamp_i64(v) for v in value]
    if isinstance(value, dict):
        return {k: clamp_i64(v) for k, v in value.items()}
    return value


# ======================================================================================
# Service registry (PROTOCOL.md section 6), with Python's locking.
# ======================================================================================


def registry_dir() -> Path:
    # expanduser honours $HOME on POSIX.
    return Path(os.path.expanduser("~")) / ".multifrost"


def registry_path() -> Path:
    return registry_dir() / "services.json"


def lock_path() -> Path:
    return registry_dir() / "services.lock"


class RegistryLock:
    """~/.multifrost/services.lock, taken exactly the way the Python implementation does."""

    MAX_WAIT = 10  # seconds (an int, so the error text reads "after 10s" like Python's)

    def __init__(self) -> None:
        self.fd: Optional[int] = None

    def acquire(self) -> None:
        path = lock_path()
        start = time.time()
        while time.time() - start < self.MAX_WAIT:
            registry_dir().mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except OSError:
                time.sleep(0.1)  # someone else holds it (or left it behind)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                # QUIRK: another process flocked our brand-new (still empty) file. Python gives
                # up this attempt without deleting the file it created, so the lock file leaks
                # and every later attempt (ours included) waits until someone removes it.
                os.close(fd)
                time.sleep(0.1)
                continue
            # Between O_EXCL creation and this write the lock file is empty (a known hazard).
            os.write(fd, str(os.getpid()).encode())
            self.fd = fd
            return
        raise RuntimeError(f"Could not acquire registry lock after {self.MAX_WAIT}s")

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        try:
            os.close(fd)
        except OSError:
            pass
        # QUIRK: the path is removed without checking that the file is still ours.
        try:
            os.remove(lock_path())
        except OSError:
            pass

    def __enter__(self) -> "RegistryLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_registry() -> Dict[str, Any]:
    path = registry_path()
    registry_dir().mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return {}
    with open(path, "r") as f:
        return json.load(f)


def _write_registry(data: Dict[str, Any]) -> None:
    # Python's temp name is services.tmp in the same folder; then an atomic rename.
    # Entries and fields we do not understand survive, since we rewrite what we read.
    registry_dir().mkdir(parents=True, exist_ok=True)
    tmp = registry_dir() / "services.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o644)
    os.replace(tmp, registry_path())


def pid_alive(pid: Any) -> bool:
    if type(pid) is not int or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        return s.getsockname()[1]


def register(service_id: str, pid: Optional[int] = None) -> int:
    """Register service_id for pid (default: this process); return the chosen port."""
    with RegistryLock():
        services = _read_registry()
        existing = services.get(service_id)
        if isinstance(existing, dict) and pid_alive(existing.get("pid")):
            raise RuntimeError(
                f"Service '{service_id}' already running "
                f"(PID: {existing.get('pid')}, port: {existing.get('port')})"
            )
        port = free_port()
        services[service_id] = {
            "port": port,
            "pid": os.getpid() if pid is None else pid,
            "started": datetime.now().isoformat(),  # local time, no zone, like Python
        }
        _write_registry(services)
        return port


def discover(service_id: str, timeout: float = 5.0) -> int:
    """Poll every 100 ms (taking the lock on every poll, like Python) for a live entry."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with RegistryLock():
            reg = _read_registry().get(service_id)
            if isinstance(reg, dict) and pid_alive(reg.get("pid")):
                return reg["port"]
        time.sleep(0.1)
    raise TimeoutError(f"Service '{service_id}' not found within {timeout}s")


def unregister(service_id: str, pid: Optional[int] = None) -> None:
    """Remove the entry only if it belongs to pid (default: this process)."""
    me = os.getpid() if pid is None else pid
    with RegistryLock():
        services = _read_registry()
        reg = services.get(service_id)
        if isinstance(reg, dict) and reg.get("pid") == me:
            del services[service_id]
            _write_registry(services)


# ======================================================================================
# Child (worker) role.
# ======================================================================================

# Metadata of the call being executed, for get_metadata().
_call_context = threading.local()


class MathWorker:
    """The cross-language "math worker" contract.

    Every attribute of this object is reachable by name (hasattr/getattr, as in Python's
    ChildWorker), so keep server state out of it.
    """

    # Like ChildWorker.namespace: a public non-callable attribute, so calling "namespace"
    # yields "'namespace' is not callable".
    namespace = "default"

    def list_functions(self):
        # Like ChildWorker.list_functions: the public callables, itself included.
        return sorted(name for name in dir(self)
                      if not name.startswith("_") and callable(getattr(self, name)))

    def add(self, a, b):
        return a + b

    def multiply(self, a, b):
        return a * b

    def divide(self, a, b):
        if b == 0:
            raise ValueError("Cannot divide by zero")
        return a / b

    def factorial(self, n):
        if n < 0:
            raise ValueError("Factorial is not defined for negative numbers")
        result = 1
        for i in range(2, n + 1):
            result *= i
        return result

    def fibonacci(self, n):
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a

    def echo(self, value):
        return value

    def get_info(self):
        return {"language": "python", "pid": os.getpid()}

    def throw_error(self, message):
        raise RuntimeError(message)

    async def async_add(self, a, b):
        await asyncio.sleep(0)
        return a + b

    async def fibonacci_async(self, n):
        await asyncio.sleep(0)
        return self.fibonacci(n)

    def large_data(self, size):
        return {"data": list(range(size)), "length": size}

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def print_line(self, text):
        # Prints to this process's own stdout (the real Python child's forwarding of stdout
        # to the parent is broken anyway: see PROTOCOL.md section 5).
        print(text, flush=True)
        return None

    def get_metadata(self):
        return getattr(_call_context, "metadata", None)

    def _secret(self):
        return "you should not see this"


class ChildServer:
    """ROUTER side. The main thread owns the socket: it receives, answers heartbeats at once,
    and sends every reply. Calls run one at a time (like Python) on a single executor thread,
    which hands packed replies back through a queue and wakes the main loop with a pipe, so a
    long call (sleep) never delays heartbeat replies."""

    def __init__(self, worker: Any, namespace: str, service_id: Optional[str] = None):
        self.worker = worker
        self.namespace = namespace
        self.service_id = service_id
        self.registered = False
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.calls: "queue.Queue[tuple]" = queue.Queue()
        self.replies: "queue.Queue[tuple]" = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.stop_requested = False

    # -- plumbing ------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass  # pipe full: the main loop is going to wake up anyway

    def request_stop(self, *_sig: Any) -> None:
        self.stop_requested = True
        self._wake()

    def _queue_reply(self, sender: bytes, reply: Dict[str, Any]) -> None:
        try:
            data = pack(clamp_i64(reply))
        except Exception:
            # QUIRK: when Python fails to pack a reply (e.g. nested deeper than msgpack's
            # recursion limit, ~511 levels) it prints to its (broken) stderr forwarding and
            # sends nothing: the caller just times out.
            return
        self.replies.put((sender, data))
        self._wake()

    @staticmethod
    def _envelope(msg_id: Any, msg_type: str) -> Dict[str, Any]:
        return {"app": APP, "id": msg_id, "type": msg_type, "timestamp": now()}

    # -- message handling ------------------------------------------------------------------

    def _handle_frames(self, frames: List[bytes]) -> None:
        # QUIRK: Python reads [sender, empty, payload] by position and ignores anything with
        # fewer than 3 frames (e.g. a DEALER that sent no empty delimiter frame).
        if len(frames) < 3:
            return
        sender, payload = frames[0], frames[2]
        try:
            msg = unpack_limited(payload)
        except Exception:
            return  # garbage, over-limit, or non-string map keys: dropped without a reply
        if not isinstance(msg, dict):
            return
        # Python builds ComlinkMessage(**payload): a non-str top-level key fails that.
        if not all(isinstance(k, str) for k in msg):
            return
        # A missing "app" is accepted (Python's default is its own APP name).
        if msg.get("app", APP) != APP:
            return
        # QUIRK: namespace check on every message type; absent = accepted, nil = mismatch.
        # A mismatching call gets NO reply (the caller waits for its timeout).
        if "namespace" in msg and msg["namespace"] != self.namespace:
            return
        msg_type = msg.get("type")
        if msg_type == "call":
            self.calls.put((sender, msg))
        elif msg_type == "heartbeat" and SERIAL:
            # QUIRK (PEER_SERIAL=1): the upstream child handles one message at a time, so a
            # heartbeat waits behind the call that runs and is answered only after it.
            self.calls.put((sender, msg))
        elif msg_type == "heartbeat":
            self._reply_heartbeat(sender, msg)
        elif msg_type == "shutdown":
            self.stop_requested = True
        # other types: ignored

    def _heartbeat_reply(self, msg: Dict[str, Any]) -> Dict[str, Any]:
        meta = msg.get("metadata")
        meta = dict(meta) if isinstance(meta, dict) else {}
        meta["hb_response"] = True
        reply = self._envelope(msg["id"] if "id" in msg else new_id(), "heartbeat")
        reply["metadata"] = meta
        return reply

    def _reply_heartbeat(self, sender: bytes, msg: Dict[str, Any]) -> None:
        reply = self._heartbeat_reply(msg)
        try:
            self.sock.send_multipart([sender, b"", pack(clamp_i64(reply))], zmq.NOBLOCK)
        except Exception:
            pass

    def _dispatch(self, msg: Dict[str, Any], loop: asyncio.AbstractEventLoop) -> Dict[str, Any]:
        # A call without "id" still runs and is answered under a fresh random id (QUIRK:
        # Python's message object defaults its id).
        msg_id = msg["id"] if "id" in msg else new_id()
        try:
            function = msg.get("function")
            if not function:
                raise ValueError("Message missing 'function' field")
            if not msg_id:
                raise ValueError("Message missing 'id' field")
            args = tuple(msg.get("args", ()))
            # QUIRK (wording): an undefined "_x" is "not found"; only an existing private
            # name gives "Cannot call private method".
            if not hasattr(self.worker, function):
                raise AttributeError(f"Function '{function}' not found")
            func = getattr(self.worker, function)
            if not callable(func):
                raise AttributeError(f"'{function}' is not callable")
            if function.startswith("_"):
                raise AttributeError(f"Cannot call private method '{function}'")
            meta = msg.get("metadata")
            _call_context.metadata = meta if isinstance(meta, dict) else {}
            try:
                if asyncio.iscoroutinefunction(func):
                    result = loop.run_until_complete(func(*args))
                else:
                    result = func(*args)
            finally:
                _call_context.metadata = None
            reply = self._envelope(msg_id, "response")
            reply["metadata"] = {}
            # QUIRK: Python leaves out keys whose value is None: no "result" means nil.
            if result is not None:
                reply["result"] = result
            return reply
        except Exception as e:
            # QUIRK: "<ExceptionType>: <message>\n<traceback text>".
            reply = self._envelope(msg_id, "error")
            reply["metadata"] = {}
            reply["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            return reply

    def _executor(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        while True:
            sender, msg = self.calls.get()
            if msg.get("type") == "heartbeat":
                self._queue_reply(sender, self._heartbeat_reply(msg))
                continue
            try:
                reply = self._dispatch(msg, loop)
            except BaseException:  # never let the executor die
                continue
            self._queue_reply(sender, reply)

    # -- main loop ---------------------------------------------------------------------------

    def serve(self) -> int:
        threading.Thread(target=self._executor, name="calls", daemon=True).start()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        while not self.stop_requested:
            try:
                events = dict(poller.poll(100))
            except zmq.ZMQError as e:
                if e.errno == zmq.EINTR:
                    continue
                raise
            if self.wake_r in events:
                try:
                    while os.read(self.wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            while True:
                try:
                    sender, data = self.replies.get_nowait()
                except queue.Empty:
                    break
                try:
                    self.sock.send_multipart([sender, b"", data], zmq.NOBLOCK)
                except zmq.ZMQError:
                    pass  # ROUTER drops replies to unknown/overloaded peers
            for _ in range(1000):
                if self.stop_requested:
                    break
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._handle_frames(frames)
        return 0

    def close(self) -> None:
        if self.registered and self.service_id:
            try:
                unregister(self.service_id)
            except Exception as e:
                print(f"Warning: Failed to unregister service: {e}", file=sys.stderr)
            self.registered = False
        try:
            self.sock.close(linger=1000)
            self.ctx.term()
        except Exception:
            pass


def run_child(service_id: Optional[str] = None) -> int:
    """Spawn mode if COMLINK_ZMQ_PORT is set and non-empty (it wins over a service id),
    otherwise connect mode with service_id, otherwise a fatal error."""
    namespace = os.environ.get("PEER_NAMESPACE", "default")
    worker = MathWorker()
    worker.namespace = namespace
    port_env = os.environ.get("COMLINK_ZMQ_PORT", "")
    if not port_env and not service_id:
        print("FATAL: Need COMLINK_ZMQ_PORT env or service_id parameter", file=sys.stderr)
        return 1
    if port_env:
        try:
            port = int(port_env)
            if not 1024 <= port <= 65535:
                raise ValueError(f"Port {port} out of valid range")
        except ValueError as e:
            print(f"FATAL: Invalid port '{port_env}': {e}", file=sys.stderr)
            return 1
        server = ChildServer(worker, namespace)
        server.sock.connect(f"tcp://127.0.0.1:{port}")
        ready_line = None
    else:
        try:
            port = register(service_id)
        except Exception as e:
            print(f"FATAL: {e}", file=sys.stderr)
            return 1
        server = ChildServer(worker, namespace, service_id)
        server.registered = True
        try:
            server.sock.bind(f"tcp://127.0.0.1:{port}")
        except zmq.ZMQError as e:
            print(f"FATAL: ZMQ setup failed: {e}", file=sys.stderr)
            server.close()
            return 1
        ready_line = f"READY {port}"

    signal.signal(signal.SIGTERM, server.request_stop)
    signal.signal(signal.SIGINT, server.request_stop)
    if ready_line:
        print(ready_line, flush=True)
    try:
        return server.serve()
    finally:
        server.close()


# ======================================================================================
# Parent (caller) role.
# ======================================================================================


class RemoteError(Exception):
    """The child answered with an error reply; error_text is its "error" value."""

    def __init__(self, error_text: Any):
        super().__init__(error_text)
        self.error_text = error_text


class PendingCall:
    """A request waiting for the reply that carries its id."""

    def __init__(self, msg_id: Any, function: Optional[str] = None):
        self.id = msg_id
        self.function = function
        self.reply: Optional[Dict[str, Any]] = None
        self._event = threading.Event()
        self._parent: Optional["Parent"] = None

    def _set(self, reply: Dict[str, Any]) -> None:
        self.reply = reply
        self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float] = 10.0) -> Dict[str, Any]:
        """The raw reply map; TimeoutError (and the id is forgotten) if none in time."""
        if not self._event.wait(timeout):
            if self._parent is not None:
                self._parent._forget(self.id)
            what = self.function if self.function is not None else "request"
            raise TimeoutError(f"{what} (id {self.id}) got no reply within {timeout}s")
        assert self.reply is not None
        return self.reply

    def result(self, timeout: Optional[float] = 10.0) -> Any:
        reply = self.wait(timeout)
        kind = reply.get("type")
        if kind == "response":
            return reply.get("result")  # QUIRK tolerated: no "result" key means nil
        if kind == "error":
            raise RemoteError(reply.get("error"))
        raise RuntimeError(f"unexpected reply type {kind!r}: {reply!r}")


class Parent:
    """DEALER side. One background I/O thread owns the socket; callers from any thread queue
    frames for it and wait on PendingCall objects, so replies may arrive in any order.

    Attributes filled while running:
      output        [(type, text)] from "stdout"/"stderr" messages sent by the child
      unmatched     reply maps whose id matched nothing pending (late or foreign replies)
      child_stdout, child_stderr   lines read from a spawned child's own pipes (stdio="drain")
    """

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self.output: List[tuple] = []
        self.unmatched: List[Any] = []
        self.child_stdout: List[str] = []
        self.child_stderr: List[str] = []
        self._pending: Dict[Any, PendingCall] = {}
        self._lock = threading.Lock()
        self._outbox: "queue.Queue[tuple]" = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closing = False
        self._closed = False
        self._io_thread: Optional[threading.Thread] = None
        self._pipe_threads: List[threading.Thread] = []

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def spawn(
        cls,
        executable: str,
        args: Sequence[str] = (),
        env: Optional[Dict[str, str]] = None,
        stdio: str = "drain",
        ready_timeout: float = 10.0,
    ) -> "Parent":
        """Bind a DEALER on a free 127.0.0.1 port and start `executable *args` with
        COMLINK_ZMQ_PORT and COMLINK_WORKER_MODE=1 (no "--worker" is added, as for Python's
        executable=<path> mode); then wait until a heartbeat is echoed.

        stdio: "drain" pipes the child's stdout/stderr and reads them into child_stdout /
        child_stderr; "pipe" pipes them and never reads them (what Python parents do: a child
        that writes ~64 KiB then blocks); "inherit" leaves them on this process's.
        """
        self = cls()
        self.sock.bind("tcp://127.0.0.1:*")
        endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.port = int(endpoint.rsplit(":", 1)[1])
        self._start_io()
        child_env = dict(os.environ if env is None else env)
        child_env["COMLINK_ZMQ_PORT"] = str(self.port)
        child_env["COMLINK_WORKER_MODE"] = "1"
        pipe = None if stdio == "inherit" else subprocess.PIPE
        try:
            self.process = subprocess.Popen(
                [executable, *args], env=child_env, stdin=subprocess.DEVNULL,
                stdout=pipe, stderr=pipe,
            )
        except Exception:
            self.close()
            raise
        if stdio == "drain":
            for stream, sink in ((self.process.stdout, self.child_stdout),
                                 (self.process.stderr, self.child_stderr)):
                t = threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
                t.start()
                self._pipe_threads.append(t)
        try:
            self.wait_ready(ready_timeout)
        except Exception:
            self.close()
            raise
        return self

    @classmethod
    def connect_port(cls, port: int, ready_timeout: Optional[float] = None) -> "Parent":
        """Connect a DEALER to tcp://127.0.0.1:<port>. With ready_timeout, also wait until a
        heartbeat is echoed (a connect-mode DEALER queues messages until the peer is up)."""
        self = cls()
        self.port = int(port)
        self.sock.connect(f"tcp://127.0.0.1:{self.port}")
        self._start_io()
        if ready_timeout is not None:
            try:
                self.wait_ready(ready_timeout)
            except Exception:
                self.close()
                raise
        return self

    @classmethod
    def connect_service(cls, service_id: str, timeout: float = 5.0,
                        ready_timeout: Optional[float] = None) -> "Parent":
        return cls.connect_port(discover(service_id, timeout), ready_timeout)

    @staticmethod
    def _drain(stream: Any, sink: List[str]) -> None:
        try:
            for line in iter(stream.readline, b""):
                sink.append(line.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError):
            pass

    def wait_ready(self, timeout: float = 10.0) -> float:
        """Send a heartbeat every 100 ms until one is echoed; return the elapsed seconds.
        Heartbeats that cannot be sent yet (no peer connected) are dropped, not queued."""
        start = time.monotonic()
        sent: List[PendingCall] = []
        try:
            while time.monotonic() - start < timeout:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"child exited with status {self.process.returncode} before it was "
                        f"ready; stderr: {' | '.join(self.child_stderr[-5:])}"
                    )
                sent.append(self._send_heartbeat(droppable=True))
                deadline = time.monotonic() + 0.1
                while time.monotonic() < deadline:
                    if any(p.done() for p in sent):
                        return time.monotonic() - start
                    time.sleep(0.005)
            raise TimeoutError(f"peer not ready: no heartbeat echoed within {timeout}s")
        finally:
            for p in sent:
                self._forget(p.id)

    # -- I/O thread ------------------------------------------------------------------------

    def _start_io(self) -> None:
        self._io_thread = threading.Thread(target=self._io_loop, name="dealer-io", daemon=True)
        self._io_thread.start()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _io_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        backlog: "collections.deque[tuple]" = collections.deque()
        while not self._closing:
            poller.modify(self.sock, zmq.POLLIN | (zmq.POLLOUT if backlog else 0))
            events = dict(poller.poll(50))
            if self._wake_r in events:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            while True:
                try:
                    backlog.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            # Send in order. A DEALER with no connected peer refuses (EAGAIN): ordinary
            # messages wait in the backlog so nothing sent early is lost; droppable ones
            # (readiness heartbeats) are discarded.
            while backlog:
                frames, droppable = backlog[0]
                try:
                    self.sock.send_multipart(frames, zmq.NOBLOCK)
                except zmq.Again:
                    if droppable:
                        backlog.popleft()
                        continue
                    break
                backlog.popleft()
            for _ in range(1000):
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_frames(frames)

    def _on_frames(self, frames: List[bytes]) -> None:
        try:
            msg = unpack_lenient(frames[-1])  # the last frame is the payload
        except Exception:
            self.unmatched.append(frames)
            return
        if not isinstance(msg, dict):
            self.unmatched.append(msg)
            return
        if msg.get("type") in ("stdout", "stderr"):
            self.output.append((msg.get("type"), msg.get("output")))
            return
        msg_id = msg.get("id")
        try:
            with self._lock:
                pending = self._pending.pop(msg_id, None)
        except TypeError:  # unhashable id
            pending = None
        if pending is None:
            self.unmatched.append(msg)
        else:
            pending._set(msg)

    def _forget(self, msg_id: Any) -> None:
        with self._lock:
            self._pending.pop(msg_id, None)

    def _expect(self, msg_id: Any, function: Optional[str] = None) -> PendingCall:
        p = PendingCall(msg_id, function)
        p._parent = self
        with self._lock:
            self._pending[msg_id] = p
        return p

    def _enqueue(self, frames: List[bytes], droppable: bool = False) -> None:
        if self._closing:
            raise RuntimeError("parent is closed")
        self._outbox.put((frames, droppable))
        self._wake()

    # -- API -------------------------------------------------------------------------------

    def send_raw(self, frames: Union[bytes, Sequence[bytes]],
                 expect_id: Any = None) -> Optional[PendingCall]:
        """Send raw bytes. A bytes payload goes out as [empty, payload]; a list of frames is
        sent verbatim. With expect_id, returns a PendingCall for the reply with that id."""
        pending = self._expect(expect_id) if expect_id is not None else None
        if isinstance(frames, (bytes, bytearray)):
            frames = [b"", bytes(frames)]
        self._enqueue([bytes(f) for f in frames])
        return pending

    def request(self, msg: Dict[str, Any]) -> PendingCall:
        """Send a message map as given (packed with use_bin_type) and wait for msg["id"]."""
        pending = self._expect(msg.get("id"), msg.get("function"))
        self._enqueue([b"", pack(msg)])
        return pending

    def call_async(self, function: str, *args: Any, namespace: Any = "default",
                   metadata: Optional[Dict[str, Any]] = None) -> PendingCall:
        meta = {"timestamp_sent": now()}
        if metadata:
            meta.update(metadata)
        msg = {
            "app": APP, "id": new_id(), "type": "call", "timestamp": now(),
            "function": function, "args": list(args), "namespace": namespace,
            "metadata": meta,
        }
        return self.request(msg)

    def call(self, function: str, *args: Any, namespace: Any = "default",
             metadata: Optional[Dict[str, Any]] = None, timeout: Optional[float] = 10.0) -> Any:
        """Result of the remote call; RemoteError on an error reply; TimeoutError."""
        return self.call_async(function, *args, namespace=namespace,
                               metadata=metadata).result(timeout)

    def _send_heartbeat(self, droppable: bool = False) -> PendingCall:
        msg = {"app": APP, "id": new_id(), "type": "heartbeat", "timestamp": now(),
               "metadata": {"hb_timestamp": now()}}
        pending = self._expect(msg["id"], "heartbeat")
        self._enqueue([b"", pack(msg)], droppable=droppable)
        return pending

    def heartbeat(self, timeout: float = 3.0) -> float:
        """RTT in ms: (now - hb_timestamp) * 1000. Tolerates an echo without hb_response."""
        sent_at = now()
        reply = self._send_heartbeat().wait(timeout)
        if reply.get("type") != "heartbeat":
            raise RuntimeError(f"heartbeat answered with {reply!r}")
        meta = reply.get("metadata")
        hb_ts = meta.get("hb_timestamp") if isinstance(meta, dict) else None
        if not isinstance(hb_ts, (int, float)) or isinstance(hb_ts, bool):
            hb_ts = sent_at
        return (now() - hb_ts) * 1000.0

    def send_shutdown(self) -> None:
        """Python parents never do this; provided for tests of the shutdown message."""
        self._enqueue([b"", pack({"app": APP, "id": new_id(), "type": "shutdown",
                                   "timestamp": now()})])

    def close(self) -> None:
        """Like a Python parent: SIGTERM the spawned child (never "shutdown"), SIGKILL after
        2 s; then stop the I/O thread and close the socket."""
        if self._closed:
            return
        self._closed = True
        if self.process is not None and self.process.poll() is None:
            try:
                self.process.terminate()
                self.process.wait(2.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            except OSError:
                pass
        self._closing = True
        self._wake()
        if self._io_thread is not None:
            self._io_thread.join(5.0)
        for t in self._pipe_threads:
            t.join(1.0)
        try:
            self.sock.close(linger=0)
            self.ctx.term()
        except Exception:
            pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "Parent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ======================================================================================
# Parent suite (the cross-language math-worker contract).
# ======================================================================================


def same(a: Any, b: Any) -> bool:
    """Deep equality that also compares types (True is not 1, bytes is not str)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def num_eq(a: Any, b: Any) -> bool:
    """Numeric equality for arithmetic results (a child may answer 3 or 3.0)."""
    return (isinstance(a, (int, float)) and not isinstance(a, bool)) and a == b


def expect_remote_error(fn: Callable[[], Any], *needles: str, any_of: bool = False) -> str:
    try:
        value = fn()
    except RemoteError as e:
        text = str(e.error_text)
        found = [n for n in needles if n in text]
        if (any_of and found) or (not any_of and len(found) == len(needles)):
            return ""
        raise AssertionError(f"error text lacks {needles!r}: {text!r}")
    raise AssertionError(f"expected an error reply, got result {value!r}")


# Checks of test-only methods (not in the cross-language math contract). With
# PEER_CONTRACT_ONLY=1 they are skipped, for workers that expose exactly the contract.
EXTRA_CHECKS = {"get_metadata", "print_line", "heartbeat_during_sleep"}


def run_suite(parent: Parent) -> int:
    passed = 0
    failed = 0
    info: Dict[str, Any] = {}
    contract_only = os.environ.get("PEER_CONTRACT_ONLY") == "1"

    def check(name: str, fn: Callable[[], Any]) -> None:
        nonlocal passed, failed
        if contract_only and name in EXTRA_CHECKS:
            print(f"skip {name} (not in the math contract)", flush=True)
            return
        try:
            detail = fn()
        except Exception as e:
            failed += 1
            text = f"{type(e).__name__}: {e}".replace("\n", "\\n")
            if len(text) > 400:
                text = text[:400] + "..."
            print(f"FAIL {name}: {text}", flush=True)
            return
        passed += 1
        print(f"ok {name}" + (f" ({detail})" if detail else ""), flush=True)

    def assert_true(cond: bool, detail: str) -> None:
        if not cond:
            raise AssertionError(detail)

    def check_value(name: str, function: str, args: tuple, expected: Any,
                    cmp: Callable[[Any, Any], bool] = same) -> None:
        def run() -> None:
            got = parent.call(function, *args)
            assert_true(cmp(got, expected), f"got {got!r}, expected {expected!r}")
        check(name, run)

    def hb() -> str:
        rtt = parent.heartbeat()
        assert_true(rtt > 0, f"rtt {rtt}")
        return f"rtt {rtt:.2f} ms"

    check("heartbeat", hb)

    def get_info() -> str:
        got = parent.call("get_info")
        assert_true(isinstance(got, dict), f"got {got!r}")
        assert_true(isinstance(got.get("language"), str), f"no language in {got!r}")
        assert_true(type(got.get("pid")) is int, f"no int pid in {got!r}")
        info.update(got)
        return f"language={got['language']} pid={got['pid']}"

    check("get_info", get_info)

    check_value("add", "add", (1, 2), 3, num_eq)
    check_value("multiply", "multiply", (6, 7), 42, num_eq)
    check_value("divide", "divide", (10, 4), 2.5, num_eq)
    check("divide_by_zero", lambda: expect_remote_error(lambda: parent.call("divide", 1, 0),
                                                          "zero"))
    check_value("factorial", "factorial", (10,), 3628800, num_eq)
    check_value("fibonacci", "fibonacci", (50,), 12586269025, num_eq)

    echoes = [
        ("none", None), ("true", True), ("int", 42), ("i64_min", -(2**63)),
        ("i64_max", 2**63 - 1), ("float", 1.5), ("str", "héllo"),
        ("bytes", b"\x00\xffbytes"), ("nested_list", [1, [2, [3]]]),
        ("nested_map", {"a": {"b": [1, 2]}}),
    ]
    for label, value in echoes:
        check_value(f"echo_{label}", "echo", (value,), value)

    check("throw_error", lambda: expect_remote_error(lambda: parent.call("throw_error", "boom"),
                                                       "boom"))
    check("unknown_function", lambda: expect_remote_error(lambda: parent.call("nope"),
                                                            "Function 'nope' not found"))
    check("private_function", lambda: expect_remote_error(
        lambda: parent.call("_secret"), "private", "not found", any_of=True))
    check_value("async_add", "async_add", (2, 3), 5, num_eq)
    check_value("fibonacci_async", "fibonacci_async", (10,), 55, num_eq)

    def large_data() -> None:
        got = parent.call("large_data", 1000)
        assert_true(isinstance(got, dict), f"got {type(got).__name__}")
        data = got.get("data")
        assert_true(isinstance(data, list) and len(data) == 1000, "data is not 1000 items")
        assert_true(num_eq(data[999], 999), f"data[999] = {data[999]!r}")
        assert_true(num_eq(got.get("length"), 1000), f"length = {got.get('length')!r}")

    check("large_data", large_data)

    def concurrent() -> str:
        n = 200
        start = time.monotonic()
        pending = [(i, parent.call_async("add", i, i)) for i in range(n)]
        wrong = []
        for i, p in pending:
            got = p.result(timeout=30.0)
            if not num_eq(got, 2 * i):
                wrong.append((i, got))
        assert_true(not wrong, f"{len(wrong)} wrong, first {wrong[:3]!r}")
        return f"{n} calls in {(time.monotonic() - start) * 1000:.0f} ms"

    check("concurrent_200", concurrent)

    def get_metadata() -> None:
        got = parent.call("get_metadata", metadata={"user_key": "v"})
        assert_true(isinstance(got, dict), f"got {got!r}")
        assert_true(got.get("user_key") == "v", f"user_key missing in {got!r}")
        ts = got.get("timestamp_sent")
        assert_true(isinstance(ts, float), f"timestamp_sent missing in {got!r}")

    check("get_metadata", get_metadata)

    def print_line() -> str:
        marker = f"peer-print-{uuid.uuid4().hex[:8]}"
        got = parent.call("print_line", marker)
        assert_true(got is None, f"got {got!r}, expected None")
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if any(marker in str(text) for _, text in parent.output):
                return "output forwarded as a stdout message"
            if any(marker in line for line in parent.child_stdout):
                return "output on the child's own stdout"
            time.sleep(0.02)
        return "output not seen"

    check("print_line", print_line)

    def heartbeat_during_sleep() -> str:
        p = parent.call_async("sleep", 1.0)
        time.sleep(0.2)
        rtt = parent.heartbeat(timeout=0.7)
        got = p.result(timeout=5.0)
        assert_true(num_eq(got, 1.0), f"sleep returned {got!r}")
        return f"rtt {rtt:.2f} ms during a 1 s call"

    check("heartbeat_during_sleep", heartbeat_during_sleep)

    def namespace() -> str:
        try:
            value = parent.call("add", 1, 2, namespace="other", timeout=1.0)
        except RemoteError as e:
            text = str(e.error_text)
            assert_true("other" in text and "default" in text,
                        f"error text lacks 'other'/'default': {text!r}")
            return "error reply"
        except TimeoutError:
            assert_true(info.get("language") == "python",
                        "timeout: the call was ignored, which only a Python child may do")
            return "timeout: the Python child ignored it"
        raise AssertionError(f"got a result {value!r} for namespace 'other'")

    check("namespace_mismatch", namespace)

    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


def burst(executable: str, count: int) -> int:
    """Spawn a child, have it print `count` numbered lines (its `print_lines`), and check that
    every line arrived, in order, by the time the call's reply did."""
    parent = Parent.spawn(executable, [])
    try:
        printed = parent.call("print_lines", count, timeout=120.0)
        lines = [text for kind, text in parent.output
                 if kind == "stdout" and str(text).startswith("line ")]
        in_order = all(text.startswith(f"line {i:06} ") for i, text in enumerate(lines))
        print(f"BURST printed={printed} received={len(lines)} in_order={in_order}", flush=True)
        return 0 if printed == count and len(lines) == count and in_order else 1
    finally:
        parent.close()


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the ")" that ends the command name, field 14 (utime) is index 11.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(sorted_values: List[float], p: float) -> float:
    """Nearest rank, as the Rust driver computes it."""
    rank = min(max(math.ceil(p * len(sorted_values)), 1), len(sorted_values))
    return sorted_values[rank - 1]


def bench(config: Dict[str, Any]) -> int:
    """The benchmark's Python-parent rows (rpc-bench runs this): this parent calls `add` on
    every child in config["children"] ([[name, argv], ...]), the children interleaved within
    each of config["rounds"] rounds: config["sequential"] calls one after the other (p50/p99),
    then config["pipelined"] calls with config["in_flight"] in flight (calls/s, and the CPU
    time of this process and of the child during them). Prints one JSON object."""
    rounds, sequential = int(config["rounds"]), int(config["sequential"])
    pipelined, in_flight = int(config["pipelined"]), int(config["in_flight"])
    parents: List[tuple] = []
    current = ""  # the child being called, for the error
    try:
        for current, argv in config["children"]:
            parents.append((current, Parent.spawn(argv[0], argv[1:], stdio="drain")))
        samples: Dict[str, Dict[str, Any]] = {
            name: {"small": [], "rates": [], "parent_cpu": 0.0, "child_cpu": 0.0, "calls": 0}
            for name, _ in parents}

        def one_by_one(parent: Parent, count: int, into: Optional[List[float]]) -> None:
            for i in range(count):
                started = time.perf_counter()
                got = parent.call("add", i, 1, timeout=30.0)  # TimeoutError names the call
                elapsed = time.perf_counter() - started
                if got != i + 1:
                    raise RuntimeError(f"add({i}, 1) answered {got!r}")
                if into is not None:
                    into.append(elapsed)

        def in_parallel(parent: Parent, count: int) -> float:
            window: "collections.deque[tuple]" = collections.deque()
            started = time.perf_counter()
            for i in range(count):
                if len(window) >= in_flight:
                    j, pending = window.popleft()
                    if pending.result(30.0) != j + 1:
                        raise RuntimeError(f"add({j}, 1) answered wrong")
                window.append((i, parent.call_async("add", i, 1)))
            while window:
                j, pending = window.popleft()
                if pending.result(30.0) != j + 1:
                    raise RuntimeError(f"add({j}, 1) answered wrong")
            return count / (time.perf_counter() - started)

        for current, parent in parents:  # warm-up
            one_by_one(parent, max(sequential // 5, 50), None)
            in_parallel(parent, max(pipelined // 5, 100))
        for _ in range(rounds):
            for current, parent in parents:
                one_by_one(parent, sequential, samples[current]["small"])
            for current, parent in parents:
                s = samples[current]
                assert parent.process is not None
                own_before = time.process_time()
                child_before = _process_cpu_seconds(parent.process.pid)
                s["rates"].append(in_parallel(parent, pipelined))
                s["parent_cpu"] += time.process_time() - own_before
                s["child_cpu"] += _process_cpu_seconds(parent.process.pid) - child_before
                s["calls"] += pipelined
        rows = {}
        for name, s in samples.items():
            small = sorted(s["small"])
            rates = sorted(s["rates"])
            rows[name] = {
                "p50_us": _percentile(small, 0.50) * 1e6,
                "p99_us": _percentile(small, 0.99) * 1e6,
                "per_s": rates[len(rates) // 2],
                "per_s_rounds": s["rates"],
                "parent_cpu_us": s["parent_cpu"] * 1e6 / s["calls"],
                "child_cpu_us": s["child_cpu"] * 1e6 / s["calls"],
            }
        print(json.dumps({"rows": rows}), flush=True)
        return 0
    except Exception as e:
        print(f"parent-bench: {current or 'starting'}: {type(e).__name__}: {e}",
              file=sys.stderr, flush=True)
        return 1
    finally:
        for _, parent in parents:
            parent.close()


def _suite_with(make_parent: Callable[[], Parent]) -> int:
    try:
        parent = make_parent()
    except Exception as e:
        print(f"FAIL start: {type(e).__name__}: {e}".replace("\n", "\\n"), flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    try:
        return run_suite(parent)
    finally:
        parent.close()


# ======================================================================================
# Command line.
# ======================================================================================


def _usage() -> int:
    print(__doc__, file=sys.stderr)
    return 2


def _pid_option(rest: List[str]) -> tuple:
    """Split an optional "--pid P" out of rest."""
    if "--pid" in rest:
        i = rest.index("--pid")
        try:
            pid = int(rest[i + 1])
        except (IndexError, ValueError):
            raise SystemExit("--pid needs an integer")
        return rest[:i] + rest[i + 2:], pid
    return rest, None


def main(argv: List[str]) -> int:
    mode = argv[0] if argv else None
    if mode == "parent-burst" and len(argv) == 3:
        return burst(argv[1], int(argv[2]))
    if mode == "parent-bench" and len(argv) == 2:
        return bench(json.loads(argv[1]))
    if mode in ("parent-suite",):
        # Arguments after the executable go to the child verbatim ("--worker" included).
        if len(argv) < 2:
            return _usage()
        return _suite_with(lambda: Parent.spawn(argv[1], argv[2:]))

    # Every other mode ignores "--worker" wherever it is.
    args = [a for a in argv if a != "--worker"]
    mode = args[0] if args else "worker"
    rest = args[1:]

    if mode == "parent-connect-suite" and len(rest) == 1:
        return _suite_with(lambda: Parent.connect_port(int(rest[0]), ready_timeout=10.0))
    if mode == "parent-discover-suite" and len(rest) in (1, 2):
        timeout = float(rest[1]) if len(rest) == 2 else 5.0
        return _suite_with(lambda: Parent.connect_service(rest[0], timeout, ready_timeout=10.0))
    if mode == "worker" and not rest:
        return run_child()
    if mode == "service" and len(rest) == 1:
        return run_child(service_id=rest[0])
    if mode == "hold-lock" and len(rest) == 1:
        seconds = float(rest[0])
        lock = RegistryLock()

        def on_signal(*_: Any) -> None:
            lock.release()  # a clean stop still releases; SIGKILL leaves a stale lock
            os._exit(1)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            lock.acquire()
        except RuntimeError as e:
            print(str(e), file=sys.stderr)
            return 1
        print("LOCKED", flush=True)
        time.sleep(seconds)
        lock.release()
        print("RELEASED", flush=True)
        return 0
    if mode in ("register", "unregister"):
        rest, pid = _pid_option(rest)
        if len(rest) != 1:
            return _usage()
        try:
            if mode == "register":
                print(register(rest[0], pid), flush=True)
            else:
                unregister(rest[0], pid)
        except Exception as e:
            print(str(e), file=sys.stderr)
            return 1
        return 0
    if mode == "churn" and len(rest) in (2, 3):
        # Register, discover and unregister <prefix>-0..<count-1> with the Python locking,
        # checking every step, for at least <seconds> (default: one round).
        prefix, count = rest[0], int(rest[1])
        seconds = float(rest[2]) if len(rest) == 3 else 0.0
        started, ops = time.monotonic(), 0
        try:
            while True:
                ids = [f"{prefix}-{i}" for i in range(count)]
                for sid in ids:
                    port = register(sid)
                    found = discover(sid, 5.0)
                    if found != port:
                        raise RuntimeError(f"{sid}: registered port {port}, found {found}")
                    ops += 2
                for sid in ids:
                    if discover(sid, 5.0) is None:
                        raise RuntimeError(f"{sid}: lost before it was unregistered")
                    unregister(sid)
                    ops += 1
                if time.monotonic() - started >= seconds:
                    break
        except Exception as e:
            print(f"ERROR {e}", flush=True)
            return 1
        print(f"CHURNED {ops}", flush=True)
        return 0
    if mode == "discover" and len(rest) in (1, 2):
        try:
            port = discover(rest[0], float(rest[1])) if len(rest) == 2 else discover(rest[0])
        except Exception as e:
            print(str(e), file=sys.stderr)
            return 1
        print(port, flush=True)
        return 0
    return _usage()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
