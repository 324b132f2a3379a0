"""A minimal worker: `ParentWorker::spawn("python/examples/math_worker.py")` from Rust.

Run it as a service instead with `python math_worker.py --service math-service`.
"""

import asyncio
import sys

from multifrost import ChildWorker


class MathWorker(ChildWorker):
    def add(self, a, b):
        return a + b

    def divide(self, a, b):
        if b == 0:
            raise ValueError("Cannot divide by zero")
        return a / b

    async def slow_square(self, n, seconds=0.1):
        await asyncio.sleep(seconds)
        return n * n


if __name__ == "__main__":
    service_id = sys.argv[sys.argv.index("--service") + 1] if "--service" in sys.argv else None
    MathWorker(service_id=service_id).run()
