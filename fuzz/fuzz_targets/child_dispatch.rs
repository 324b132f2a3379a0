//! The child's dispatch rules (`multifrost::child::rules`) on arbitrary payloads, the worker
//! run, and the parent's reading of the reply.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    multifrost_fuzz_harness::child_dispatch(data);
});
