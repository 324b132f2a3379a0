pub struct Math;

pub trait Adder {
    fn add(&self, a: i64, b: i64) -> i64;
}

#[multifrost::worker]
impl Adder for Math {
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

fn main() {}
