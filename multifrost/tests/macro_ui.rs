//! Compile-time behaviour of `#[multifrost::worker]`: the forms it accepts (`ui/pass`) and the
//! error each unsupported form gets (`ui/fail`, with the expected compiler output beside each).
//!
//! After changing a message, regenerate the `.stderr` files with `TRYBUILD=overwrite` and read
//! them: each should hold one precise error pointing at the offending tokens.

/// One test for both sets: trybuild builds them all in one shared project.
#[test]
fn supported_forms_compile_and_unsupported_ones_get_one_precise_error() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
