pub struct Math;

#[multifrost::worker]
impl Math {
    #[multifrost(skip, rename = "addNumbers")]
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
