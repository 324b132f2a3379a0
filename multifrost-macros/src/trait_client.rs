//! The trait form, `#[multifrost::client] trait Model { .. }`: a typed client for a worker in
//! any language, without the worker's code.
//!
//! The trait is emitted with its methods replaced by the contract signatures (see `contract`),
//! which leaves it dyn-compatible: `dyn Model` is the type handles are typed with
//! (`handle_for::<dyn Model>()`), and `impl Service for dyn Model` gives it the clients that
//! `client` renders, exactly as for an impl block.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemTrait;

use crate::model::Worker;
use crate::{client, contract};

pub fn expand(item: &ItemTrait, client: &Worker) -> TokenStream {
    let ItemTrait {
        attrs,
        vis,
        trait_token,
        ident,
        ..
    } = item;
    let contract = contract::declarations(client);
    let note = format!(
        "\n\nA `#[multifrost::client]` trait: `Handle<dyn {ident}>::call()` returns a \
         [`{ident}Client`], `BlockingHandle<dyn {ident}>::call()` a [`{ident}BlockingClient`]. \
         A Rust worker states that it serves it with \
         `#[multifrost::worker(serves = {ident})]`, which implements the trait's hidden \
         contract items, so the compiler checks the worker's signatures against the trait's."
    );
    let clients = client::expand(client);
    quote! {
        #(#attrs)*
        #[doc = #note]
        #vis #trait_token #ident {
            #contract
        }

        #clients
    }
}
