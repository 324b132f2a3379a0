//! What a worker says about itself: the answer to `multifrost.describe` (an extension), and to
//! `list_functions` (which the upstream Python worker answers too).

use serde::{Deserialize, Serialize};

/// A worker's methods, as `multifrost.describe` returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The namespace the worker answers in.
    pub namespace: String,
    /// The exposed methods, in declaration order.
    pub methods: Vec<MethodDescription>,
}

/// One exposed method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodDescription {
    /// The name callers use.
    pub name: String,
    /// The positional parameters, in order; `None` when the worker does not say (a worker
    /// implemented by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<ParamDescription>>,
    /// The Rust type of the result (for `Result<T, E>`, `T`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<String>,
    /// The first line of the method's doc comment, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
}

/// One positional parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamDescription {
    /// Its name.
    pub name: String,
    /// Its Rust type, as written.
    #[serde(rename = "type")]
    pub ty: String,
    /// A trailing `Option` the caller may leave out.
    #[serde(default)]
    pub optional: bool,
}

impl Description {
    /// A description that knows only the names (what a hand-written worker says by default).
    pub fn from_names(namespace: &str, names: impl IntoIterator<Item = String>) -> Description {
        Description {
            namespace: namespace.to_owned(),
            methods: names
                .into_iter()
                .map(|name| MethodDescription {
                    name,
                    ..MethodDescription::default()
                })
                .collect(),
        }
    }
}
