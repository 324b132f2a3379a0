"""The worker the unit tests drive: one method per behaviour under test.

APP_CONCURRENCY sets max_concurrent_calls; `--service <id>` runs it in connect mode.
"""

import asyncio
import os
import sys
import threading
import time

from multifrost import ChildWorker, current_metadata


class AppWorker(ChildWorker):
    counter = 0  # a public attribute that is not callable
    _barriers = {}
    _barriers_lock = threading.Lock()

    def add(self, a, b):
        return a + b

    def echo(self, value):
        return value

    def nothing(self):
        return None

    def fail(self, message):
        raise RuntimeError(message)

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    async def async_add(self, a, b):
        await asyncio.sleep(0.01)
        return a + b

    def print_lines(self, count, stream="stdout"):
        out = sys.stdout if stream == "stdout" else sys.stderr
        for i in range(count):
            print(f"line {i}", file=out)
        return count

    def print_partial(self, text):
        sys.stdout.write(text)  # no newline: still sent before the reply
        return None

    def write_fd(self, fd, text):
        os.write(fd, text.encode())
        return None

    def big(self):
        return 2**64 - 1

    def not_a_number(self):
        return [float("nan"), float("inf"), 1.5]

    def int_keys(self):
        return {1: "one", "two": 2}

    def a_set(self):
        return {1, 2}

    def metadata(self):
        return current_metadata()

    def rendezvous(self, parties, timeout):
        """Returns once `parties` calls are inside at the same time (needs concurrency)."""
        with self._barriers_lock:
            barrier = self._barriers.setdefault(parties, threading.Barrier(parties))
        barrier.wait(timeout)
        return True

    def _secret(self):
        return "hidden"


if __name__ == "__main__":
    service_id = sys.argv[sys.argv.index("--service") + 1] if "--service" in sys.argv else None
    concurrency = int(os.environ.get("APP_CONCURRENCY", "1"))
    AppWorker(service_id=service_id, max_concurrent_calls=concurrency).run()
