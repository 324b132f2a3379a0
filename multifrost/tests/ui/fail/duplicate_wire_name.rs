pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    #[multifrost(rename = "add")]
    pub fn plus(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
