#[multifrost::client]
pub trait Greeter {
    fn greet(&self, name: &str) -> String;
}

fn main() {}
