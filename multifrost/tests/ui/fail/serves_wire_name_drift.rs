mod api {
    #[multifrost::client]
    pub trait MathApi {
        fn add(&self, a: i64, b: i64) -> i64;
        #[multifrost(rename = "get_info")]
        fn info(&self) -> String;
    }
}

pub struct Math;

// The trait calls `get_info`; this worker answers `info`: the trait's Rust name, not its wire
// name. Both halves of the mismatch are reported.
#[multifrost::worker(serves = api::MathApi)]
impl Math {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    pub fn info(&self) -> String {
        "math".into()
    }
}

fn main() {}
