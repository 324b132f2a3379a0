#[multifrost::client]
pub trait Model {
    fn predict(&self, features: Vec<f64>) -> Vec<f64>;

    #[multifrost(skip)]
    fn train(&self, rows: Vec<Vec<f64>>);
}

fn main() {}
