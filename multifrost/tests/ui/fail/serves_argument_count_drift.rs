mod api {
    #[multifrost::client]
    pub trait MathApi {
        fn add(&self, a: i64, b: i64) -> i64;
        #[multifrost(rename = "get_info")]
        fn info(&self) -> String;
    }
}

pub struct Math;

#[multifrost::worker(serves = api::MathApi)]
impl Math {
    pub fn add(&self, a: i64, b: i64, c: i64) -> i64 {
        a + b + c
    }

    pub fn get_info(&self) -> String {
        "math".into()
    }
}

fn main() {}
