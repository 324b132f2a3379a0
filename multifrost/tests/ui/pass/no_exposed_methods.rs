//! An impl block with nothing to expose still makes a (useless) worker, without warnings.
#![deny(warnings)]

#[derive(Default)]
pub struct Empty;

#[multifrost::worker]
impl Empty {
    pub fn new() -> Empty {
        Empty
    }
}

fn main() {
    use multifrost::Worker;
    assert!(Empty::new().list_functions().is_empty());
}
