#[multifrost::client]
pub trait Math {
    fn add(&self, (a, b): (i64, i64)) -> i64;
}

fn main() {}
