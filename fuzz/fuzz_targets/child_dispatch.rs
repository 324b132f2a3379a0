//! The child's dispatch path (rebuilt from the public API) on arbitrary payloads, and the
//! parent's reading of the reply.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    multifrost_fuzz::child_dispatch(data);
});
