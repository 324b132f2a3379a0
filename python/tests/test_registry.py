"""ServiceRegistry against a temporary HOME, with the shared lock protocol (PROTOCOL.md 6)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from multifrost import ServiceRegistry
from multifrost import registry


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class RegistryTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="multifrost-reg-")
        self.addCleanup(shutil.rmtree, self.home, True)
        old = os.environ.get("HOME")
        os.environ["HOME"] = self.home
        self.addCleanup(lambda: os.environ.__setitem__("HOME", old))
        self.dir = os.path.join(self.home, ".multifrost")
        self.path = os.path.join(self.dir, "services.json")
        self.lock = os.path.join(self.dir, "services.lock")

    def write(self, services):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.path, "w") as f:
            json.dump(services, f)

    def read(self):
        with open(self.path) as f:
            return json.load(f)

    def test_register_writes_an_entry_and_keeps_foreign_entries_and_fields(self):
        foreign = {"go-svc": {"port": 6000, "pid": os.getppid(), "start_time": "x", "extra": 1}}
        self.write(foreign)
        port = ServiceRegistry.register("py-svc")
        services = self.read()
        self.assertEqual(services["go-svc"], foreign["go-svc"])
        entry = services["py-svc"]
        self.assertEqual((entry["port"], entry["pid"]), (port, os.getpid()))
        self.assertIsInstance(entry["started"], str)
        self.assertFalse(os.path.exists(self.lock), "the lock is released")
        self.assertEqual(ServiceRegistry.discover("py-svc", 1.0), port)

    def test_a_live_id_cannot_be_registered_twice(self):
        self.write({"taken": {"port": 5555, "pid": os.getppid(), "started": "then"}})
        with self.assertRaises(RuntimeError) as caught:
            ServiceRegistry.register("taken")
        self.assertEqual(str(caught.exception),
                         f"Service 'taken' already running (PID: {os.getppid()}, port: 5555)")

    def test_an_entry_of_a_dead_process_is_replaced(self):
        self.write({"phoenix": {"port": 5555, "pid": dead_pid(), "started": "then"}})
        port = ServiceRegistry.register("phoenix")
        self.assertEqual(self.read()["phoenix"]["pid"], os.getpid())
        self.assertEqual(self.read()["phoenix"]["port"], port)

    def test_unregister_removes_only_its_own_entry(self):
        self.write({"mine": {"port": 1, "pid": os.getpid()},
                    "theirs": {"port": 2, "pid": os.getppid()}})
        ServiceRegistry.unregister("mine")
        ServiceRegistry.unregister("theirs")
        self.assertEqual(list(self.read()), ["theirs"])

    def test_discover_times_out_with_the_shared_wording(self):
        self.write({"gone": {"port": 1, "pid": dead_pid()}})
        started = time.monotonic()
        with self.assertRaises(TimeoutError) as caught:
            ServiceRegistry.discover("gone", 0.3)
        self.assertEqual(str(caught.exception), "Service 'gone' not found within 0.3s")
        self.assertGreaterEqual(time.monotonic() - started, 0.3)

    def test_a_lock_left_by_a_dead_process_is_removed(self):
        os.makedirs(self.dir)
        with open(self.lock, "w") as f:
            f.write(str(dead_pid()))
        ServiceRegistry.register("after-crash")
        self.assertIn("after-crash", self.read())

    def test_a_lock_held_by_a_live_process_is_waited_for(self):
        self.hold_lock_for(0.5, content=str(os.getppid()))

    def test_an_empty_fresh_lock_is_waited_for_not_judged_by_its_content(self):
        self.hold_lock_for(0.5, content="")

    def hold_lock_for(self, seconds, content):
        os.makedirs(self.dir)
        with open(self.lock, "w") as f:
            f.write(content)
        release = threading.Timer(seconds, os.unlink, [self.lock])
        release.start()
        self.addCleanup(release.cancel)
        started = time.monotonic()
        ServiceRegistry.register("patient")
        self.assertGreaterEqual(time.monotonic() - started, seconds * 0.9)
        self.assertIn("patient", self.read())

    def test_a_lock_older_than_ten_seconds_is_removed(self):
        os.makedirs(self.dir)
        with open(self.lock, "w") as f:
            f.write("")
        old = time.time() - registry.STALE_LOCK_AGE - 5
        os.utime(self.lock, (old, old))
        ServiceRegistry.register("old-lock")
        self.assertIn("old-lock", self.read())


if __name__ == "__main__":
    unittest.main()
