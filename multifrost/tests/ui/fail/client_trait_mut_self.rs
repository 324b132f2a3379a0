#[multifrost::client]
pub trait Counter {
    fn increment(&mut self) -> i64;
}

fn main() {}
