"""Capturing the worker's stdout and stderr, line by line, for forwarding to the parent.

Two layers, because a Python parent pipes its child's stdout/stderr and never reads them
(PROTOCOL.md section 5), so a spawned worker must not write to the inherited descriptors:

- ``LineWriter`` replaces ``sys.stdout`` / ``sys.stderr``. ``print`` from any thread goes
  through it synchronously, so a call's lines are queued before that call's reply.
- ``FdCapture`` points descriptors 1 and 2 at pipes of its own (spawn mode only) and forwards
  what C extensions, subprocesses or ``os.write`` put there. Its lines are forwarded as they
  arrive; their order relative to replies is best effort.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Callable, Dict, List, Optional

# A line longer than this is forwarded in pieces (the receivers' limit is 10 MiB per str).
MAX_CHUNK = 1024 * 1024

Emit = Callable[[str, str], None]


def _split_long(text: str) -> List[str]:
    if len(text) <= MAX_CHUNK:
        return [text]
    return [text[i:i + MAX_CHUNK] for i in range(0, len(text), MAX_CHUNK)]


class LineWriter(io.TextIOBase):
    """A text stream that hands every complete line to ``emit(stream, line)``.

    Each thread has its own partial line, so lines printed by concurrent calls never mix.
    ``flush()`` sends the calling thread's partial line too (``print(..., end="", flush=True)``
    shows at once); ``flush_all()`` sends everybody's, at shutdown.
    """

    def __init__(self, stream: str, emit: Emit, fileno: Optional[int] = None):
        super().__init__()
        self._stream = stream
        self._emit = emit
        self._fileno = fileno
        self._partial: Dict[int, str] = {}
        self._lock = threading.Lock()

    # -- the TextIO surface code expects from sys.stdout --------------------------------

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "replace"

    @property
    def buffer(self) -> "_BinaryFacade":
        return _BinaryFacade(self)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        if self._fileno is None:
            raise io.UnsupportedOperation("fileno")
        return self._fileno

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        me = threading.get_ident()
        with self._lock:
            pending = self._partial.pop(me, "") + text
            *lines, rest = pending.split("\n")
            if rest:
                self._partial[me] = rest
        for line in lines:
            self._send(line)
        return len(text)

    def flush(self) -> None:
        self.flush_thread(threading.get_ident())

    # -- for the child -----------------------------------------------------------------

    def flush_thread(self, ident: int) -> None:
        with self._lock:
            rest = self._partial.pop(ident, "")
        if rest:
            self._send(rest)

    def flush_all(self) -> None:
        with self._lock:
            rests = list(self._partial.values())
            self._partial.clear()
        for rest in rests:
            self._send(rest)

    def _send(self, line: str) -> None:
        if line.endswith("\r"):
            line = line[:-1]
        for piece in _split_long(line):
            self._emit(self._stream, piece)


class _BinaryFacade:
    """``sys.stdout.buffer`` for code that writes bytes: decoded as UTF-8 (with replacement)."""

    def __init__(self, writer: LineWriter):
        self._writer = writer

    def write(self, data: bytes) -> int:
        self._writer.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        self._writer.flush()


class FdCapture:
    """Points descriptors 1 and 2 at pipes and forwards the lines written to them.

    The inherited descriptors are kept aside (never written to) and put back by ``restore``.
    """

    def __init__(self, emit: Emit):
        self._emit = emit
        self._saved: Dict[int, int] = {}
        self._threads: List[threading.Thread] = []

    def start(self) -> None:
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            self._saved[fd] = os.dup(fd)
            os.set_inheritable(self._saved[fd], False)
            os.dup2(write_end, fd)
            os.close(write_end)
            thread = threading.Thread(
                target=self._forward, args=(read_end, stream),
                name=f"multifrost-{stream}", daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def restore(self, drain_timeout: float = 1.0) -> None:
        """Put the inherited descriptors back; wait (bounded) until the pipes are drained."""
        for fd, saved in self._saved.items():
            try:
                os.dup2(saved, fd)  # closes our pipe's write end: the reader sees EOF
                os.close(saved)
            except OSError:
                pass
        self._saved.clear()
        for thread in self._threads:
            # A subprocess that inherited the pipe keeps it open: do not wait for it forever.
            thread.join(drain_timeout)
        self._threads.clear()

    def _forward(self, read_end: int, stream: str) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._send(stream, line)
                if len(pending) > MAX_CHUNK:
                    self._send(stream, pending)
                    pending = b""
        except OSError:
            pass
        finally:
            if pending:
                self._send(stream, pending)
            os.close(read_end)

    def _send(self, stream: str, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self._emit(stream, line.decode("utf-8", "replace"))
