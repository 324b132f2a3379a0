#[multifrost::client]
pub trait Math {
    fn sum(&self, items: impl IntoIterator<Item = i64>) -> i64;
}

fn main() {}
