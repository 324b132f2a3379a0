"""The pure parts of the wire format: result preparation, decoding limits, replies."""

import math
import unittest

import msgpack

from multifrost import protocol


class PrepareResultTest(unittest.TestCase):
    def test_integers_in_i64_pass_and_outside_raise(self):
        self.assertEqual(protocol.prepare_result([2**63 - 1, -(2**63)], "f"),
                         [2**63 - 1, -(2**63)])
        for value in (2**63, -(2**63) - 1, [1, {"k": 2**64}]):
            with self.subTest(value=value), self.assertRaises(OverflowError) as caught:
                protocol.prepare_result(value, "f")
            self.assertIn("the result of 'f'", str(caught.exception))

    def test_non_finite_floats_become_none_and_tuples_lists(self):
        self.assertEqual(protocol.prepare_result((math.nan, math.inf, -math.inf, 0.5), "f"),
                         [None, None, None, 0.5])

    def test_map_keys_become_strings_and_bytes_stay_bytes(self):
        self.assertEqual(protocol.prepare_result({1: b"\x00", 2.5: "t"}, "f"),
                         {"1": b"\x00", "2.5": "t"})
        self.assertEqual(protocol.prepare_result(bytearray(b"ab"), "f"), b"ab")

    def test_bool_is_not_an_integer_and_int_subclasses_are_plain(self):
        import enum

        class Color(enum.IntEnum):
            RED = 1

        self.assertIs(protocol.prepare_result(True, "f"), True)
        self.assertEqual(type(protocol.prepare_result(Color.RED, "f")), int)

    def test_too_deep_results_are_refused(self):
        value = 1
        for _ in range(protocol.MAX_RESULT_DEPTH + 5):
            value = [value]
        with self.assertRaises(ValueError):
            protocol.prepare_result(value, "deep")


class DecodeTest(unittest.TestCase):
    def test_a_map_decodes(self):
        message = {"app": protocol.APP_NAME, "id": "1", "type": "call", "args": [b"x", "y"]}
        self.assertEqual(protocol.decode(msgpack.packb(message, use_bin_type=True)), message)

    def test_rejections_keep_the_routing_fields(self):
        payload = msgpack.packb({"args": ["x" * (protocol.MAX_STR_BIN + 1)], "id": "late",
                                 "type": "call", "function": "f"})
        with self.assertRaises(protocol.MessageRejected) as caught:
            protocol.decode(payload)
        self.assertEqual(caught.exception.fields, {"id": "late", "type": "call", "function": "f"})

    def test_non_maps_and_garbage_are_rejected(self):
        for payload in (msgpack.packb([1, 2]), b"\xc1", b""):
            with self.subTest(payload=payload), self.assertRaises(protocol.MessageRejected):
                protocol.decode(payload)


class RepliesTest(unittest.TestCase):
    def test_heartbeat_reply_keeps_id_and_timestamp(self):
        reply = protocol.heartbeat_reply({"id": "h", "metadata": {"hb_timestamp": 12.5}})
        self.assertEqual((reply["id"], reply["type"]), ("h", "heartbeat"))
        self.assertEqual(reply["metadata"], {"hb_timestamp": 12.5, "hb_response": True})

    def test_heartbeat_without_timestamp_gets_now(self):
        reply = protocol.heartbeat_reply({"id": "h"})
        self.assertIsInstance(reply["metadata"]["hb_timestamp"], float)

    def test_response_leaves_out_a_none_result(self):
        self.assertNotIn("result", protocol.response("r", None))
        self.assertEqual(protocol.response("r", 0)["result"], 0)


if __name__ == "__main__":
    unittest.main()
