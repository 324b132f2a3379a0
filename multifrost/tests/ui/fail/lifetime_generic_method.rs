pub struct Math;

#[multifrost::worker]
impl Math {
    pub fn name<'a>(&'a self) -> String {
        String::new()
    }
}

fn main() {}
