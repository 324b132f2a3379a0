#[multifrost::client]
pub trait Model {
    #[deprecated]
    fn predict(&self, features: Vec<f64>) -> Vec<f64>;
}

fn main() {}
