pub struct Greeter;

#[multifrost::worker]
impl Greeter {
    pub fn greet(&self, names: Vec<&'static str>) -> String {
        names.join(", ")
    }
}

fn main() {}
