pub struct Math;

#[multifrost::worker(name = "math")]
impl Math {
    pub fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
