"""multifrost workers in Python, for parents in Rust, Python, Node or Go (comlink_ipc_v4).

    from multifrost import ChildWorker

    class MathWorker(ChildWorker):
        def add(self, a, b):
            return a + b

    if __name__ == "__main__":
        MathWorker().run()

The names are those of the upstream Python implementation, so a worker written for it ports
by changing its import. See README.md for what differs (for the better).
"""

from .child import ChildWorker, StartupError, current_metadata
from .protocol import APP_NAME, I64_MAX, I64_MIN
from .registry import ServiceRegistry

__version__ = "0.1.0"

__all__ = [
    "APP_NAME",
    "ChildWorker",
    "I64_MAX",
    "I64_MIN",
    "ServiceRegistry",
    "StartupError",
    "current_metadata",
    "__version__",
]
