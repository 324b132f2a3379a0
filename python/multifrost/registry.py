"""The service registry of connect mode: ``~/.multifrost/services.json`` (PROTOCOL.md section 6).

Shared with every implementation, so the file format and the lock protocol are exactly the
upstream ones: the lock is ``services.lock``, created with O_CREAT|O_EXCL, then flocked, then
given our pid; released by unlocking, closing and deleting it; retried every 100 ms for 10 s.
Entries and fields written by others are kept when the file is rewritten.

One improvement over upstream, which PROTOCOL.md allows: a lock file left behind by a crashed
process (its content is the pid of a dead process, or it is older than 10 s) is removed.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional

LOCK_TIMEOUT = 10.0
LOCK_RETRY = 0.1
STALE_LOCK_AGE = 10.0


def registry_dir() -> Path:
    # expanduser honours $HOME at call time, which is what tests rely on.
    return Path(os.path.expanduser("~")) / ".multifrost"


def registry_path() -> Path:
    return registry_dir() / "services.json"


def lock_path() -> Path:
    return registry_dir() / "services.lock"


def pid_alive(pid: Any) -> bool:
    if type(pid) is not int or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    except OSError:
        return False
    return True


class RegistryLock:
    """The registry lock file, taken and released the upstream way."""

    def __init__(self) -> None:
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            registry_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(lock_path(), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                _remove_if_stale(lock_path())
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    # Someone flocked our brand-new file (against the protocol). Upstream leaks
                    # the file here; we created it, so we may delete it.
                    os.close(fd)
                    _unlink_quietly(lock_path())
                else:
                    os.write(fd, str(os.getpid()).encode())
                    self._fd = fd
                    return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"Could not acquire registry lock after {LOCK_TIMEOUT:g}s")
            time.sleep(LOCK_RETRY)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(fd)
        _unlink_quietly(lock_path())

    def __enter__(self) -> "RegistryLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _remove_if_stale(path: Path) -> None:
    """Remove a lock file whose holder is dead (by its pid) or that is older than 10 s.

    An empty lock file is only judged by its age: it may be one that another process has just
    created and not yet written its pid into (PROTOCOL.md section 6). We only read it, never
    open it for writing or flock it.
    """
    try:
        age = time.time() - path.stat().st_mtime
        content = path.read_text().strip()
    except OSError:
        return
    holder_dead = content.isdigit() and not pid_alive(int(content))
    if holder_dead or age > STALE_LOCK_AGE:
        _unlink_quietly(path)


def _read() -> Dict[str, Any]:
    try:
        text = registry_path().read_text()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    data = json.loads(text)
    if not isinstance(data, dict):
        raise RuntimeError(f"{registry_path()} does not hold a JSON object")
    return data


def _write(services: Dict[str, Any]) -> None:
    tmp = registry_dir() / "services.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(services, f, indent=2)
    os.replace(tmp, registry_path())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceRegistry:
    """register / discover / unregister, like the upstream ``ServiceRegistry`` (synchronous)."""

    @staticmethod
    def register(service_id: str) -> int:
        """Record this process under ``service_id`` on a free port, and return the port.

        Fails with ``Service '<id>' already running (PID: <pid>, port: <port>)`` when a live
        process holds the id.
        """
        with RegistryLock():
            services = _read()
            existing = services.get(service_id)
            if isinstance(existing, dict) and pid_alive(existing.get("pid")):
                raise RuntimeError(
                    f"Service '{service_id}' already running "
                    f"(PID: {existing.get('pid')}, port: {existing.get('port')})"
                )
            port = _free_port()
            services[service_id] = {
                "port": port,
                "pid": os.getpid(),
                "started": datetime.now().isoformat(),
            }
            _write(services)
            return port

    @staticmethod
    def discover(service_id: str, timeout: float = 5.0) -> int:
        """The port of a live ``service_id``, polling every 100 ms for up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with RegistryLock():
                entry = _read().get(service_id)
            if isinstance(entry, dict) and pid_alive(entry.get("pid")):
                return int(entry["port"])
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Service '{service_id}' not found within {timeout:g}s")
            time.sleep(LOCK_RETRY)

    @staticmethod
    def unregister(service_id: str) -> None:
        """Remove the entry, but only if it is this process's."""
        with RegistryLock():
            services = _read()
            entry = services.get(service_id)
            if isinstance(entry, dict) and entry.get("pid") == os.getpid():
                del services[service_id]
                _write(services)
