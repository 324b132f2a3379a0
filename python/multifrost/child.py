"""``ChildWorker``: the worker side. Subclass it; its public methods are served.

Threads, and who owns what:

- the **I/O thread** (the one that called ``run()``, or a background thread after
  ``start()``) owns the ROUTER socket. It receives, answers heartbeats at once, checks every
  call against the dispatch rules, and sends everything queued in the outbox;
- ``max_concurrent_calls`` **call threads** run the methods (async methods run on one asyncio
  loop thread, awaited from a call thread), pack the reply and queue it in the outbox;
- output (``print`` from anywhere) is queued in the same outbox, so a call's lines are sent
  before that call's reply.

So a long call never delays a heartbeat reply: a Rust parent does not mistake it for death.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import errno
import inspect
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

import zmq

from . import protocol
from .output import FdCapture, LineWriter
from .registry import ServiceRegistry

# Messages waiting for the I/O thread; beyond this, printing threads wait (backpressure)
# instead of growing memory without bound.
OUTBOX_LIMIT = 10_000
# Output lines kept while no parent is known yet (older ones are dropped beyond that).
UNROUTED_LIMIT = 10_000
# How long stopping may spend sending what is still queued.
STOP_FLUSH_SECONDS = 2.0

_call_metadata: contextvars.ContextVar[Optional[Dict[str, Any]]] = contextvars.ContextVar(
    "multifrost_call_metadata", default=None
)


def current_metadata() -> Dict[str, Any]:
    """The ``metadata`` map of the call being executed (``{}`` outside a call).

    Works in sync and async methods, also with concurrent calls.
    """
    metadata = _call_metadata.get()
    return metadata if metadata is not None else {}


class StartupError(RuntimeError):
    """The worker cannot start (bad COMLINK_ZMQ_PORT, registry failure, socket failure)."""


def _error_text(error: BaseException) -> str:
    """Python's wording: ``"<ExceptionType>: <message>\\n<traceback>"``."""
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return f"{type(error).__name__}: {error}\n{trace}"


class ChildWorker:
    """Base class of a worker. Public methods (sync or ``async``) of a subclass are callable
    by a parent; names starting with ``_`` never are.

    Args:
        service_id: for connect mode: the worker registers under this id in
            ``~/.multifrost/services.json`` and binds on 127.0.0.1. Spawn mode
            (``COMLINK_ZMQ_PORT`` set by the parent) always wins over it.
        namespace: calls for another namespace get an error reply (default ``"default"``).
        max_concurrent_calls: how many calls may run at once (default 1, as upstream; the
            worker keeps answering heartbeats while they run either way).
    """

    namespace = "default"
    max_concurrent_calls = 1

    def __init__(
        self,
        service_id: Optional[str] = None,
        *,
        namespace: Optional[str] = None,
        max_concurrent_calls: Optional[int] = None,
    ):
        self.service_id = service_id
        if namespace is not None:
            self.namespace = namespace
        if max_concurrent_calls is not None:
            if max_concurrent_calls < 1:
                raise ValueError("max_concurrent_calls must be at least 1")
            self.max_concurrent_calls = max_concurrent_calls
        self.port: Optional[int] = None
        self._mf_server: Optional[_Server] = None
        self._mf_thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        """Serve until the parent sends ``shutdown`` or the process gets SIGTERM/SIGINT.

        A worker that cannot start prints ``FATAL: <reason>`` on stderr and exits with
        status 1 (an invalid COMLINK_ZMQ_PORT, no port and no service id, a service id that
        is already running...).
        """
        try:
            server = self._mf_prepare()
        except StartupError as e:
            print(f"FATAL: {e}", file=sys.stderr, flush=True)
            sys.exit(1)
        previous = self._mf_install_signals(server)
        try:
            server.serve()
        finally:
            server.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def start(self) -> None:
        """Serve on a background thread; return once the socket is set up.

        Raises ``StartupError`` instead of exiting. Stop with ``stop()``.
        """
        server = self._mf_prepare()

        def serve() -> None:
            try:
                server.serve()
            finally:
                server.close()

        self._mf_thread = threading.Thread(target=serve, name="multifrost-io", daemon=True)
        self._mf_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (unregistering a connect-mode service) and wait for it."""
        server = getattr(self, "_mf_server", None)
        if server is not None:
            server.request_stop()
        thread = getattr(self, "_mf_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> "ChildWorker":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def list_functions(self) -> List[str]:
        """The names a parent may call (public methods of the subclass), sorted."""
        return [name for name in dir(self) if _is_served(self, name)]

    # -- internals (the _mf_ prefix keeps them clear of a subclass's own names) ------------

    def _mf_prepare(self) -> "_Server":
        if getattr(self, "_mf_server", None) is not None:
            raise RuntimeError("this worker is already serving")
        server = _Server(
            self,
            service_id=getattr(self, "service_id", None),
            namespace=self.namespace,
            concurrency=max(1, int(self.max_concurrent_calls)),
        )
        server.setup()
        self._mf_server = server
        self.port = server.port
        return server

    @staticmethod
    def _mf_install_signals(server: "_Server") -> Dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: server.request_stop())
        return previous


# Callables of ChildWorker itself (run, start, stop...) are not served: only list_functions.
_BASE_API: Set[str] = {
    name for name in dir(ChildWorker)
    if not name.startswith("_") and callable(getattr(ChildWorker, name))
} - {"list_functions"}


def _is_served(worker: ChildWorker, name: str) -> bool:
    if name.startswith("_") or name in _BASE_API or name == "list_functions":
        return False
    try:
        return callable(getattr(worker, name))
    except Exception:
        return False


class _Call:
    __slots__ = ("sender", "msg_id", "function", "func", "args", "metadata")

    def __init__(self, sender: bytes, msg_id: Any, function: str, func: Callable[..., Any],
                 args: List[Any], metadata: Dict[str, Any]):
        self.sender = sender
        self.msg_id = msg_id
        self.function = function
        self.func = func
        self.args = args
        self.metadata = metadata


class _Server:
    """The socket, the outbox, the call threads and the output capture of one ``run()``."""

    def __init__(self, worker: ChildWorker, service_id: Optional[str], namespace: str,
                 concurrency: int):
        self.worker = worker
        self.service_id = service_id
        self.namespace = namespace
        self.concurrency = concurrency
        self.port: Optional[int] = None
        self.spawned = False
        self.registered = False
        self.ctx: Optional[zmq.Context] = None
        self.sock: Optional[zmq.Socket] = None

        self.outbox: "queue.Queue[Tuple[Optional[bytes], bytes]]" = queue.Queue(OUTBOX_LIMIT)
        self.backlog: Deque[Tuple[bytes, bytes]] = collections.deque()
        self.unrouted: Deque[bytes] = collections.deque(maxlen=UNROUTED_LIMIT)
        self.parents: List[bytes] = []
        self.calls: "queue.Queue[Optional[_Call]]" = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        self.wake_pending = False
        self.stopping = False
        self.closed = False
        self.io_thread: Optional[threading.Thread] = None

        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.loop_thread: Optional[threading.Thread] = None
        self.stdout: Optional[LineWriter] = None
        self.stderr: Optional[LineWriter] = None
        self.saved_streams: Optional[Tuple[Any, Any]] = None
        self.fd_capture: Optional[FdCapture] = None

    # -- start-up ----------------------------------------------------------------------

    def setup(self) -> None:
        port_env = os.environ.get("COMLINK_ZMQ_PORT", "")
        if port_env:
            self.port = self._spawn_port(port_env)
            self.spawned = True
        elif self.service_id:
            try:
                self.port = ServiceRegistry.register(self.service_id)
            except Exception as e:
                raise StartupError(str(e)) from None
            self.registered = True
        else:
            raise StartupError("Need COMLINK_ZMQ_PORT env or service_id parameter")
        try:
            self.ctx = zmq.Context()
            self.sock = self.ctx.socket(zmq.ROUTER)
            # Mandatory routing: a full pipe says EAGAIN (we keep the message and retry)
            # instead of dropping it, and a vanished parent says EHOSTUNREACH.
            self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            self.sock.setsockopt(zmq.LINGER, 1000)
            if self.spawned:
                self.sock.connect(f"tcp://127.0.0.1:{self.port}")
            else:
                self.sock.bind(f"tcp://127.0.0.1:{self.port}")
        except zmq.ZMQError as e:
            self._unregister()
            raise StartupError(f"ZMQ setup failed: {e}") from None
        if self.registered:
            # The only line a connect-mode worker writes itself, like upstream's.
            print(f"Service '{self.service_id}' ready on port {self.port}", flush=True)
        self._capture_output()
        self._start_threads()

    @staticmethod
    def _spawn_port(text: str) -> int:
        try:
            port = int(text)
        except ValueError:
            raise StartupError(f"Invalid port '{text}': not an integer") from None
        if not 1024 <= port <= 65535:
            raise StartupError(f"Invalid port '{text}': Port {port} out of valid range")
        return port

    def _capture_output(self) -> None:
        self.saved_streams = (sys.stdout, sys.stderr)
        if self.spawned:
            # A spawn-mode parent may never read our pipes: nothing may reach fds 1 and 2.
            self.fd_capture = FdCapture(self.emit_output)
            self.fd_capture.start()
            emit = self.emit_output
        else:
            emit = self._emit_and_echo
        self.stdout = LineWriter(protocol.STDOUT, emit, fileno=1)
        self.stderr = LineWriter(protocol.STDERR, emit, fileno=2)
        sys.stdout, sys.stderr = self.stdout, self.stderr

    def _start_threads(self) -> None:
        ready = threading.Event()

        def run_loop() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        self.loop_thread = threading.Thread(target=run_loop, name="multifrost-async",
                                            daemon=True)
        self.loop_thread.start()
        ready.wait()
        for i in range(self.concurrency):
            threading.Thread(target=self._call_thread, name=f"multifrost-call-{i}",
                             daemon=True).start()

    # -- output ------------------------------------------------------------------------

    def emit_output(self, stream: str, text: str) -> None:
        self._queue(None, protocol.pack(protocol.output(stream, text)))

    def _emit_and_echo(self, stream: str, text: str) -> None:
        # Connect mode: the service's own terminal or log sees its output too.
        self.emit_output(stream, text)
        original = self.saved_streams[0 if stream == protocol.STDOUT else 1]
        try:
            original.write(text + "\n")
            original.flush()
        except Exception:
            pass

    # -- the outbox ----------------------------------------------------------------------

    def _queue(self, target: Optional[bytes], payload: bytes) -> None:
        """Hand a message to the I/O thread; ``target`` None means every known parent."""
        if threading.current_thread() is self.io_thread:
            self._route(target, payload)  # never block the thread that drains the outbox
            return
        while True:
            if self.closed:
                return  # stopped: nobody will send it
            try:
                self.outbox.put((target, payload), timeout=0.1)
                break
            except queue.Full:
                continue
        if not self.wake_pending:
            self.wake_pending = True
            try:
                os.write(self.wake_w, b"x")
            except OSError:
                pass  # full or closed: the I/O thread wakes up anyway

    def _route(self, target: Optional[bytes], payload: bytes) -> None:
        if target is not None:
            self.backlog.append((target, payload))
        elif self.parents:
            self.backlog.extend((parent, payload) for parent in self.parents)
        else:
            self.unrouted.append(payload)

    def _take_outbox(self) -> None:
        # Bounded, so a parent that does not read makes printers wait rather than us grow.
        while len(self.backlog) < OUTBOX_LIMIT:
            try:
                target, payload = self.outbox.get_nowait()
            except queue.Empty:
                return
            self._route(target, payload)

    def _send_backlog(self) -> None:
        while self.backlog:
            target, payload = self.backlog[0]
            try:
                self.sock.send_multipart([target, b"", payload], zmq.NOBLOCK)
            except zmq.Again:
                return  # the parent's pipe is full: wait for POLLOUT
            except zmq.ZMQError as e:
                if e.errno == errno.EHOSTUNREACH and target in self.parents:
                    self.parents.remove(target)  # that parent went away
            self.backlog.popleft()

    def _remember_parent(self, sender: bytes) -> None:
        if sender in self.parents:
            return
        self.parents.append(sender)
        while self.unrouted:
            self.backlog.append((sender, self.unrouted.popleft()))

    # -- the I/O loop ------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stopping = True
        if self.closed:
            return
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def serve(self) -> None:
        self.io_thread = threading.current_thread()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self.wake_r, zmq.POLLIN)
        while not self.stopping:
            poller.modify(self.sock, zmq.POLLIN | (zmq.POLLOUT if self.backlog else 0))
            events = dict(poller.poll(500))
            if self.wake_r in events:
                self._drain_wake_pipe()
            self.wake_pending = False
            self._take_outbox()
            self._send_backlog()
            for _ in range(100):
                if self.stopping:
                    break
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._on_frames(frames)
            self._send_backlog()

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self.wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """Stop the async loop, put stdout/stderr back, send what is queued, unregister,
        close the socket."""
        if self.closed:
            return
        self.stopping = True
        # First, so that anything it prints on the way out is still forwarded.
        self._stop_loop()
        for writer in (self.stdout, self.stderr):
            if writer is not None:
                writer.flush_all()
        if self.saved_streams is not None:
            sys.stdout, sys.stderr = self.saved_streams
        if self.fd_capture is not None:
            self.fd_capture.restore()
        self._flush_before_close()
        self.closed = True
        self._unregister()
        for _ in range(self.concurrency):
            self.calls.put(None)
        try:
            self.sock.close(linger=1000)
            self.ctx.term()
        except Exception:
            pass
        for fd in (self.wake_r, self.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _stop_loop(self, timeout: float = 1.0) -> None:
        """Cancel the async calls still running, stop and close the loop.

        A loop left running would be collected at interpreter exit with an "Exception
        ignored" traceback on the (by then restored) inherited stderr.
        """
        loop, thread = self.loop, self.loop_thread
        if loop is None or thread is None:
            return

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout / 2)

        try:
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), loop).result(timeout)
        except Exception:
            pass  # a coroutine that blocks the loop: stop it as it is
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    def _flush_before_close(self) -> None:
        deadline = time.monotonic() + STOP_FLUSH_SECONDS
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLOUT)
        while time.monotonic() < deadline:
            self._take_outbox()
            self._send_backlog()
            if not self.backlog and self.outbox.empty():
                return
            poller.poll(50)

    def _unregister(self) -> None:
        if not self.registered:
            return
        self.registered = False
        try:
            ServiceRegistry.unregister(self.service_id)
        except Exception as e:
            print(f"Warning: Failed to unregister service: {e}", file=sys.stderr)

    # -- receiving ---------------------------------------------------------------------

    def _on_frames(self, frames: List[bytes]) -> None:
        if len(frames) < 2:
            return
        sender, payload = frames[0], frames[-1]
        try:
            message = protocol.decode(payload)
        except protocol.MessageRejected as rejected:
            self._on_rejected(sender, rejected)
            return
        if message.get("app", protocol.APP_NAME) != protocol.APP_NAME:
            return
        self._remember_parent(sender)
        kind = message.get("type")
        if kind == protocol.CALL:
            self._on_call(sender, message)
        elif kind == protocol.HEARTBEAT:
            try:
                reply = protocol.pack(protocol.heartbeat_reply(message))
            except Exception:
                return
            self.backlog.appendleft((sender, reply))  # ahead of queued output
            self._send_backlog()
        elif kind == protocol.SHUTDOWN:
            self.stopping = True
        # other types are ignored

    def _on_rejected(self, sender: bytes, rejected: protocol.MessageRejected) -> None:
        fields = rejected.fields
        if fields.get("app", protocol.APP_NAME) != protocol.APP_NAME:
            return
        msg_id = fields.get("id")
        if fields.get("type") != protocol.CALL or not isinstance(msg_id, str) or not msg_id:
            return  # nothing we could address a reply to
        self._remember_parent(sender)
        text = f"ValueError: Message rejected: {rejected.reason}\n"
        self._route(sender, protocol.pack(protocol.error(msg_id, text)))

    def _on_call(self, sender: bytes, message: Dict[str, Any]) -> None:
        # Like upstream, a call without an id runs and is answered under a fresh id.
        msg_id = message["id"] if "id" in message else protocol.new_id()
        try:
            call = self._resolve(sender, msg_id, message)
        except Exception as e:
            text = _error_text(e)
            self._route(sender, protocol.pack(protocol.error(msg_id, text)))
            return
        self.calls.put(call)

    def _resolve(self, sender: bytes, msg_id: Any, message: Dict[str, Any]) -> _Call:
        """The dispatch rules and wording of PROTOCOL.md section 4 (Python's)."""
        if "namespace" in message and message["namespace"] != self.namespace:
            # Upstream stays silent here and the caller waits; we say why instead.
            other = message["namespace"]
            raise LookupError(
                f"Namespace mismatch: call for namespace "
                f"'{other if other is not None else 'nil'}' reached worker in namespace "
                f"'{self.namespace}'"
            )
        function = message.get("function")
        if not function:
            raise ValueError("Message missing 'function' field")
        if not msg_id:
            raise ValueError("Message missing 'id' field")
        if not isinstance(function, str):
            raise TypeError(f"'function' must be a string, not {type(function).__name__}")
        args = message.get("args", [])
        if args is None:
            args = []
        if not isinstance(args, list):
            raise TypeError(f"'args' of '{function}' must be an array, not "
                            f"{type(args).__name__}")
        worker = self.worker
        if function in _BASE_API or not hasattr(worker, function):
            raise AttributeError(f"Function '{function}' not found")
        func = getattr(worker, function)
        if not callable(func):
            raise AttributeError(f"'{function}' is not callable")
        if function.startswith("_"):
            raise AttributeError(f"Cannot call private method '{function}'")
        metadata = message.get("metadata")
        return _Call(sender, msg_id, function, func, args,
                     metadata if isinstance(metadata, dict) else {})

    # -- running calls -----------------------------------------------------------------

    def _call_thread(self) -> None:
        me = threading.get_ident()
        while True:
            call = self.calls.get()
            if call is None:
                return
            payload = self._execute(call)
            # Partial lines of this call go out before its reply.
            for writer in (self.stdout, self.stderr):
                if writer is not None:
                    writer.flush_thread(me)
                    if self.loop_thread is not None and self.loop_thread.ident is not None:
                        writer.flush_thread(self.loop_thread.ident)
            self._queue(call.sender, payload)

    def _execute(self, call: _Call) -> bytes:
        token = _call_metadata.set(call.metadata)
        try:
            try:
                if inspect.iscoroutinefunction(call.func):
                    result = self._await(call.func(*call.args))
                else:
                    result = call.func(*call.args)
                    if inspect.isawaitable(result):
                        result = self._await(result)
            except BaseException as e:  # a method's failure is an answer, never our death
                return protocol.pack(protocol.error(call.msg_id, _error_text(e)))
            try:
                wire = protocol.prepare_result(result, call.function)
            except (OverflowError, ValueError) as e:  # never clamp, never go silent
                return protocol.pack(protocol.error(call.msg_id, f"{type(e).__name__}: {e}\n"))
            try:
                return protocol.pack(protocol.response(call.msg_id, wire))
            except Exception as e:  # a type msgpack cannot encode (a set, an object...)
                return protocol.pack(protocol.error(
                    call.msg_id,
                    f"{type(e).__name__}: cannot send the result of '{call.function}': {e}\n",
                ))
        finally:
            _call_metadata.reset(token)

    def _await(self, awaitable: Any) -> Any:
        async def wrapper() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result()


