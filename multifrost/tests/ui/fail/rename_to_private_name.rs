pub struct Math;

#[multifrost::worker]
impl Math {
    #[multifrost(rename = "_add")]
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
