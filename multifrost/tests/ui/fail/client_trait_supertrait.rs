#[multifrost::client]
pub trait Model: Send + Sync {
    fn predict(&self, features: Vec<f64>) -> Vec<f64>;
}

fn main() {}
