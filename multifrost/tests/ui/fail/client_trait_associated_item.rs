#[multifrost::client]
pub trait Model {
    const VERSION: u32;

    fn predict(&self, features: Vec<f64>) -> Vec<f64>;
}

fn main() {}
