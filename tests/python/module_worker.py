#!/usr/bin/env python3
"""The cross-language math worker written with our Python module (python/, `multifrost`),
plus the test-only methods tests/python_worker_module.rs needs.

Unlike comlink_peer.py (which imitates the upstream Python implementation, quirks included)
this is what a user's worker looks like. MODULE_WORKER_CONCURRENCY sets max_concurrent_calls;
`--service <id>` serves in connect mode.
"""

import asyncio
import os
import sys
import threading
import time

from multifrost import ChildWorker, current_metadata


class MathWorker(ChildWorker):
    # The math-worker contract (see comlink_peer.py's parent suite).
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
        return {"language": "python", "pid": os.getpid(), "module": "multifrost"}

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
        print(text)
        return None

    def get_metadata(self):
        return current_metadata()

    # Test-only methods.
    def print_burst(self, count):
        for i in range(count):
            print(f"burst {i}")
        print("burst done", file=sys.stderr)
        return count

    def big(self):
        return 2**64 - 1

    _barriers = {}
    _barriers_lock = threading.Lock()

    def rendezvous(self, parties, timeout):
        """Returns once `parties` calls are running at the same time."""
        with self._barriers_lock:
            barrier = self._barriers.setdefault(parties, threading.Barrier(parties))
        barrier.wait(timeout)
        return True

    def _secret(self):
        return "you should not see this"


if __name__ == "__main__":
    service_id = sys.argv[sys.argv.index("--service") + 1] if "--service" in sys.argv else None
    concurrency = int(os.environ.get("MODULE_WORKER_CONCURRENCY", "1"))
    MathWorker(service_id=service_id, max_concurrent_calls=concurrency).run()
