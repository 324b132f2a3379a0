pub struct Greeter {
    name: String,
}

#[multifrost::worker]
impl Greeter {
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn main() {}
