//! `RawMessage::parse` on arbitrary bytes, then every accessor and typed decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    multifrost_fuzz_harness::decode_message(data);
});
