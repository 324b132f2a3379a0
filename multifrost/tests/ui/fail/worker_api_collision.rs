pub struct Catalog;

#[multifrost::worker]
impl Catalog {
    pub fn list_functions(&self) -> Vec<String> {
        Vec::new()
    }
}

fn main() {}
