"""ChildWorker over real processes and sockets: a raw DEALER (wire.Parent) drives
app_worker.py and checks what comes back on the wire."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import msgpack

import wire
from wire import APP, APP_WORKER, Parent, call_message, error_of, result_of


class SpawnedWorker(unittest.TestCase):
    env = None

    def setUp(self):
        self.parent = Parent(env=self.env)
        self.addCleanup(self.parent.close)
        self.parent.wait_ready()


class HeartbeatTest(SpawnedWorker):
    def test_a_heartbeat_is_answered_with_its_id_timestamp_and_hb_response(self):
        beat = self.parent.heartbeat_message()
        reply = self.parent.request(beat)
        self.assertEqual(reply["type"], "heartbeat")
        self.assertEqual(reply["app"], APP)
        self.assertEqual(reply["metadata"],
                         {"hb_timestamp": beat["metadata"]["hb_timestamp"], "hb_response": True})

    def test_heartbeats_are_answered_while_a_call_runs(self):
        sleeper = self.parent.send(call_message("sleep", [3.0]))
        for _ in range(3):
            beat = self.parent.send(self.parent.heartbeat_message())
            self.parent.wait_reply(beat, timeout=2.0)
            self.assertNotIn(sleeper, self.parent.replies, "the call is still running")
        self.assertEqual(result_of(self.parent.wait_reply(sleeper)), 3.0)


class DispatchTest(SpawnedWorker):
    def test_public_sync_and_async_methods_are_served(self):
        self.assertEqual(result_of(self.parent.call("add", 1, 2)), 3)
        self.assertEqual(result_of(self.parent.call("async_add", 2, 3)), 5)
        self.assertEqual(result_of(self.parent.call("echo", b"\x00\xff")), b"\x00\xff")
        self.assertEqual(result_of(self.parent.call("echo", {"a": [1, "x", None]})),
                         {"a": [1, "x", None]})

    def test_a_none_result_leaves_the_result_key_out(self):
        reply = self.parent.call("nothing")
        self.assertEqual(reply["type"], "response")
        self.assertNotIn("result", reply)

    def test_an_exception_is_type_message_and_traceback(self):
        text = error_of(self.parent.call("fail", "boom"))
        self.assertTrue(text.startswith("RuntimeError: boom\nTraceback (most recent call last)"),
                        text)
        self.assertEqual(result_of(self.parent.call("add", 1, 1)), 2, "still serving")

    def test_unknown_private_and_non_callable_names_use_upstream_wording(self):
        cases = {
            "nope": "AttributeError: Function 'nope' not found\n",
            "_secret": "AttributeError: Cannot call private method '_secret'\n",
            "_undefined": "AttributeError: Function '_undefined' not found\n",
            "counter": "AttributeError: 'counter' is not callable\n",
            "run": "AttributeError: Function 'run' not found\n",
            "stop": "AttributeError: Function 'stop' not found\n",
        }
        for function, start in cases.items():
            with self.subTest(function=function):
                self.assertTrue(error_of(self.parent.call(function)).startswith(start))

    def test_a_call_without_function_or_with_an_empty_id_gets_an_error(self):
        message = call_message("add", [1, 2])
        del message["function"]
        self.assertIn("Message missing 'function' field", error_of(self.parent.request(message)))
        message = call_message("add", [1, 2], id="")
        self.parent.send(message)
        self.assertIn("Message missing 'id' field", error_of(self.parent.wait_reply("")))

    def test_a_call_without_id_is_answered_under_a_fresh_id_like_upstream(self):
        message = call_message("add", [1, 2])
        del message["id"]
        self.parent.send(message)
        self.assertTrue(self.parent.wait_until(lambda: self.parent.replies))
        (msg_id, reply), = self.parent.replies.items()
        self.assertEqual(result_of(reply), 3)
        self.assertEqual(len(msg_id), 36)

    def test_wrong_arity_names_the_function_and_the_argument(self):
        text = error_of(self.parent.call("add", 1))
        self.assertIn("add() missing 1 required positional argument: 'b'", text)

    def test_another_namespace_gets_an_error_naming_both(self):
        text = error_of(self.parent.call("add", 1, 2, namespace="other"))
        self.assertIn("'other'", text)
        self.assertIn("'default'", text)
        message = call_message("add", [1, 2])
        del message["namespace"]
        self.assertEqual(result_of(self.parent.request(message)), 3, "absent means default")

    def test_other_protocol_versions_are_ignored(self):
        ignored = self.parent.send(call_message("add", [1, 2], app="comlink_ipc_v3"))
        answered = self.parent.send(call_message("add", [2, 2]))
        self.assertEqual(result_of(self.parent.wait_reply(answered)), 4)
        self.assertNotIn(ignored, self.parent.replies)

    def test_list_functions_names_the_served_methods(self):
        names = result_of(self.parent.call("list_functions"))
        self.assertEqual(names, sorted(names))
        self.assertIn("add", names)
        self.assertIn("async_add", names)
        for hidden in ("_secret", "run", "start", "stop", "list_functions", "counter"):
            self.assertNotIn(hidden, names)

    def test_call_metadata_is_visible_to_the_method(self):
        got = result_of(self.parent.call("metadata", metadata={"user_key": "v"}))
        self.assertEqual(got, {"user_key": "v"})


class ValuesTest(SpawnedWorker):
    def test_an_integer_outside_i64_is_an_error_never_clamped(self):
        text = error_of(self.parent.call("big"))
        self.assertIn("OverflowError", text)
        self.assertIn("18446744073709551615", text)
        self.assertIn("i64", text)
        self.assertIn("OverflowError", error_of(self.parent.call("echo", 2**63)))
        self.assertEqual(result_of(self.parent.call("echo", 2**63 - 1)), 2**63 - 1)
        self.assertEqual(result_of(self.parent.call("echo", -(2**63))), -(2**63))

    def test_nan_and_infinity_become_nil_and_keys_become_strings(self):
        self.assertEqual(result_of(self.parent.call("not_a_number")), [None, None, 1.5])
        self.assertEqual(result_of(self.parent.call("int_keys")), {"1": "one", "two": 2})

    def test_an_unencodable_result_is_an_error_naming_the_function(self):
        self.assertIn("cannot send the result of 'a_set'", error_of(self.parent.call("a_set")))


class LimitsTest(SpawnedWorker):
    def rejected(self, payload: bytes, msg_id: str) -> str:
        self.parent.send_raw(payload)
        text = error_of(self.parent.wait_reply(msg_id))
        self.assertTrue(text.startswith("ValueError: Message rejected: "), text)
        return text

    def test_over_limit_calls_get_an_error_reply_and_the_worker_keeps_serving(self):
        big_str = call_message("echo", ["x" * (10 * 1024 * 1024 + 1)], id="str")
        self.assertIn("max_str_len", self.rejected(msgpack.packb(big_str), "str"))
        big_bin = call_message("echo", [b"x" * (10 * 1024 * 1024 + 1)], id="bin")
        self.assertIn("max_bin_len", self.rejected(msgpack.packb(big_bin), "bin"))
        many = call_message("echo", [list(range(100_001))], id="many")
        self.assertIn("max_array_len", self.rejected(msgpack.packb(many), "many"))
        int_keys = call_message("echo", [{1: 2}], id="keys")
        self.assertIn("not a string", self.rejected(msgpack.packb(int_keys), "keys"))
        # 2,000 nested arrays, more than the decoder's 1,024 levels (written by hand: msgpack
        # refuses to encode that deep). The id comes before the args.
        head = msgpack.packb({"app": APP, "id": "deep", "type": "call", "function": "echo"})
        deep = bytes([0x85]) + head[1:] + msgpack.packb("args") + b"\x91" * 2000 + b"\x01"
        self.assertIn("nesting", self.rejected(deep, "deep"))
        self.assertEqual(result_of(self.parent.call("add", 1, 2)), 3)

    def test_the_limits_themselves_are_accepted(self):
        at_limit = ["x" * (10 * 1024 * 1024)]
        self.assertEqual(len(result_of(self.parent.call("echo", at_limit))[0]), 10 * 1024 * 1024)

    def test_garbage_is_dropped_without_a_reply(self):
        self.parent.send_raw(b"\xc1 not msgpack")
        self.assertEqual(result_of(self.parent.call("add", 1, 2)), 3)


class OutputTest(SpawnedWorker):
    def test_printed_lines_arrive_in_order_before_the_reply_with_the_full_envelope(self):
        reply_id = self.parent.send(call_message("print_lines", [500]))
        self.parent.wait_reply(reply_id)
        lines = [text for kind, text, _, _ in self.parent.output if kind == "stdout"]
        self.assertEqual(lines, [f"line {i}" for i in range(500)])
        self.assertEqual(self.parent.arrivals[-1], reply_id, "the reply comes last")
        for _, _, frames, first in self.parent.output:
            self.assertEqual((frames, first), (2, b""), "DEALER sees [empty, payload]")

    def test_stderr_and_partial_lines_are_forwarded_before_the_reply(self):
        self.parent.call("print_lines", 3, "stderr")
        self.parent.call("print_partial", "no newline")
        self.assertEqual([(k, t) for k, t, _, _ in self.parent.output],
                         [("stderr", "line 0"), ("stderr", "line 1"), ("stderr", "line 2"),
                          ("stdout", "no newline")])

    def test_writes_to_descriptors_1_and_2_are_forwarded(self):
        self.parent.call("write_fd", 1, "raw stdout\n")
        self.parent.call("write_fd", 2, "raw stderr\n")
        self.assertTrue(self.parent.wait_until(lambda: len(self.parent.output) == 2),
                        self.parent.output)
        self.assertEqual(sorted((k, t) for k, t, _, _ in self.parent.output),
                         [("stderr", "raw stderr"), ("stdout", "raw stdout")])

    def test_nothing_reaches_the_inherited_stdout_and_stderr(self):
        self.parent.call("print_lines", 100)
        self.parent.call("print_lines", 100, "stderr")
        self.parent.call("write_fd", 1, "fd1\n")
        self.parent.call("fail", "an error")
        self.parent.call("async_add", 1, 2)  # the asyncio loop must be closed cleanly too
        self.assertEqual(self.parent.shutdown(), 0)
        self.assertEqual((self.parent.pipe_stdout, self.parent.pipe_stderr), (b"", b""))


class ConcurrencyTest(unittest.TestCase):
    def start(self, concurrency):
        env = dict(os.environ, APP_CONCURRENCY=str(concurrency))
        parent = Parent(env=env)
        self.addCleanup(parent.close)
        parent.wait_ready()
        return parent

    def test_with_max_concurrent_calls_calls_run_at_the_same_time(self):
        parent = self.start(3)
        ids = [parent.send(call_message("rendezvous", [3, 15.0])) for _ in range(3)]
        for msg_id in ids:
            self.assertIs(result_of(parent.wait_reply(msg_id)), True)

    def test_by_default_one_call_runs_at_a_time(self):
        parent = self.start(1)
        first = parent.send(call_message("rendezvous", [2, 0.5]))
        second = parent.send(call_message("rendezvous", [2, 0.5]))
        self.assertIn("BrokenBarrierError", error_of(parent.wait_reply(first)))
        self.assertIn("BrokenBarrierError", error_of(parent.wait_reply(second)))


class StartAndStopTest(unittest.TestCase):
    def run_worker(self, env):
        return subprocess.run([sys.executable, APP_WORKER], env=env, capture_output=True,
                              text=True, timeout=wire.TIMEOUT)

    def test_an_invalid_port_is_fatal_with_a_message_on_stderr(self):
        for port in ("abc", "80", "70000"):
            with self.subTest(port=port):
                done = self.run_worker(dict(os.environ, COMLINK_ZMQ_PORT=port))
                self.assertEqual(done.returncode, 1)
                self.assertIn(f"Invalid port '{port}'", done.stderr)

    def test_without_port_or_service_id_the_worker_cannot_start(self):
        env = {k: v for k, v in os.environ.items() if k != "COMLINK_ZMQ_PORT"}
        done = self.run_worker(env)
        self.assertEqual(done.returncode, 1)
        self.assertIn("Need COMLINK_ZMQ_PORT env or service_id parameter", done.stderr)

    def test_shutdown_and_sigterm_stop_cleanly(self):
        parent = Parent()
        self.addCleanup(parent.close)
        parent.wait_ready()
        self.assertEqual(parent.shutdown(), 0)
        for signum in (signal.SIGTERM, signal.SIGINT):
            parent = Parent()
            self.addCleanup(parent.close)
            parent.wait_ready()
            parent.process.send_signal(signum)
            self.assertEqual(parent.wait_exit(), 0)

    def test_a_long_running_call_does_not_delay_a_signal_stop(self):
        parent = Parent()
        self.addCleanup(parent.close)
        parent.wait_ready()
        parent.send(call_message("sleep", [60]))
        parent.wait_reply(parent.send(parent.heartbeat_message()))
        started = time.monotonic()
        parent.process.send_signal(signal.SIGTERM)
        self.assertEqual(parent.wait_exit(), 0)
        self.assertLess(time.monotonic() - started, 10)


class ExampleTest(unittest.TestCase):
    def test_the_example_math_worker_serves(self):
        example = os.path.join(os.path.dirname(wire.HERE), "examples", "math_worker.py")
        parent = Parent(script=example)
        self.addCleanup(parent.close)
        self.assertEqual(result_of(parent.call("add", 20, 22)), 42)
        self.assertEqual(result_of(parent.call("slow_square", 7, 0.01)), 49)
        self.assertIn("Cannot divide by zero", error_of(parent.call("divide", 1, 0)))
        self.assertEqual(parent.shutdown(), 0)


class ConnectModeTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="multifrost-py-")
        self.addCleanup(shutil.rmtree, self.home, True)
        self.env = {k: v for k, v in os.environ.items() if k != "COMLINK_ZMQ_PORT"}
        self.env["HOME"] = self.home

    def registry(self):
        path = os.path.join(self.home, ".multifrost", "services.json")
        with open(path) as f:
            return json.load(f)

    @staticmethod
    def reap(process):
        if process.poll() is None:
            process.kill()
        process.communicate()

    def start_service(self, service_id):
        process = subprocess.Popen([sys.executable, APP_WORKER, "--service", service_id],
                                   env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        self.addCleanup(self.reap, process)
        ready = process.stdout.readline()
        self.assertTrue(ready.startswith(f"Service '{service_id}' ready on port "), ready)
        return process, int(ready.rsplit(" ", 1)[1])

    def test_a_service_registers_serves_and_unregisters_on_sigterm(self):
        process, port = self.start_service("py-service")
        entry = self.registry()["py-service"]
        self.assertEqual((entry["pid"], entry["port"]), (process.pid, port))
        self.assertIsInstance(entry["started"], str)
        parent = Parent(connect_port=port)
        self.addCleanup(parent.close)
        self.assertEqual(result_of(parent.call("add", 20, 22)), 42)
        parent.call("print_lines", 2)
        self.assertEqual([t for _, t, _, _ in parent.output], ["line 0", "line 1"])
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(wire.TIMEOUT), 0)
        self.assertNotIn("py-service", self.registry())
        self.assertIn("line 0\nline 1\n", process.stdout.read(), "echoed on its own stdout")

    def test_a_second_service_under_a_live_id_exits_with_the_registry_message(self):
        first, _ = self.start_service("taken")
        second = subprocess.run([sys.executable, APP_WORKER, "--service", "taken"],
                                env=self.env, capture_output=True, text=True,
                                timeout=wire.TIMEOUT)
        self.assertEqual(second.returncode, 1)
        self.assertIn(f"Service 'taken' already running (PID: {first.pid}, port:",
                      second.stderr)


if __name__ == "__main__":
    unittest.main()
