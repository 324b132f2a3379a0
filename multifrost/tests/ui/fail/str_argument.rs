pub struct Greeter;

#[multifrost::worker]
impl Greeter {
    pub fn greet(&self, name: &str) -> String {
        format!("hello {name}")
    }
}

fn main() {}
