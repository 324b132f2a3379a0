#[multifrost::client(serves = Other)]
pub trait Model {
    fn predict(&self, features: Vec<f64>) -> Vec<f64>;
}

fn main() {}
