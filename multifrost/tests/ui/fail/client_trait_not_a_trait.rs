#[multifrost::client]
pub struct Model;

fn main() {}
