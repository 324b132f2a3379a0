pub struct Settings;

#[multifrost::worker]
impl Settings {
    pub fn with_options(&self, verbose: bool) -> bool {
        verbose
    }
}

fn main() {}
