mod api {
    #[multifrost::client]
    pub trait MathApi {
        fn add(&self, a: i64, b: i64) -> i64;
        #[multifrost(rename = "get_info")]
        fn info(&self) -> String;
    }
}

pub struct Math;

// `add` is rejected by the worker's own checks; the contract check is skipped rather than
// also reporting `add` as missing.
#[multifrost::worker(serves = api::MathApi)]
impl Math {
    pub fn add(&self, a: &i64, b: i64) -> i64 {
        a + b
    }

    pub fn get_info(&self) -> String {
        "math".into()
    }
}

fn main() {}
