//! Generated items are documented and lint-clean, even when the worker and its argument types
//! are private.
#![deny(warnings, missing_docs)]

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Secret {
    value: String,
}

struct Vault;

#[multifrost::worker]
impl Vault {
    /// Stores a secret.
    pub fn store(&self, secret: Secret) -> bool {
        !secret.value.is_empty()
    }

    pub async fn undocumented(&self) -> Secret {
        Secret {
            value: String::new(),
        }
    }
}

fn main() {
    drop(multifrost::run(Vault));
}
