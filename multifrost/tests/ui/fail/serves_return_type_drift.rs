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
    pub async fn add(&self, a: i64, b: i64) -> Result<i32, String> {
        i32::try_from(a + b).map_err(|error| error.to_string())
    }

    pub fn get_info(&self) -> String {
        "math".into()
    }
}

fn main() {}
