//! Which methods are exposed, and under which names.
#![deny(warnings)]

use multifrost::{Handle, Worker};

#[derive(Default)]
pub struct Strings;

#[multifrost::worker]
impl Strings {
    #[multifrost(rename = "lastIndexOf")]
    pub fn last_index_of(&self, items: Vec<String>, item: String) -> Option<usize> {
        items.iter().rposition(|candidate| *candidate == item)
    }

    /// The wire name may be one of the client's own method names: only the Rust name is taken.
    #[multifrost(rename = "with_options")]
    pub fn configure(&self) {}

    pub fn r#type(&self) -> String {
        "raw identifiers are exposed without `r#`".into()
    }

    #[multifrost(skip)]
    pub fn skipped(&self, _not_decodable: &mut Vec<i64>) {}

    pub fn _underscored(&mut self) {}

    fn private(&self) -> i64 {
        1
    }

    pub(crate) fn crate_visible(&self) -> i64 {
        self.private()
    }

    pub fn new() -> Strings {
        Strings
    }

    /// A skipped method may use a client's name, and anything else.
    #[multifrost(skip)]
    pub fn with_options(&mut self) {}
}

async fn call(handle: Handle<Strings>) -> multifrost::Result<()> {
    let _: Option<usize> = handle.call().last_index_of(vec![], "a".into()).await?;
    let (): () = handle.call().configure().await?;
    let _: String = handle.call().r#type().await?;
    Ok(())
}

fn main() {
    let mut strings = Strings::new();
    strings.skipped(&mut Vec::new());
    strings._underscored();
    strings.with_options();
    let _ = strings.crate_visible();
    assert_eq!(
        strings.list_functions(),
        ["lastIndexOf", "with_options", "type"]
    );
    let _ = call;
}
