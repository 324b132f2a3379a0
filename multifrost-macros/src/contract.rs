//! The contract between a client trait and the workers that serve it: one signature per wire
//! name, `fn get_info(..positional argument types..) -> wire result type`, with no receiver,
//! no context parameter and no asyncness (none of which crosses the wire).
//!
//! `#[multifrost::client]` declares these signatures as hidden items of the trait itself, and
//! `#[multifrost::worker(serves = Trait)]` implements the trait with its own exposed methods
//! written the same way. So the compiler compares them: a worker's argument type, argument
//! count or result that drifts from the trait is E0053/E0050 at that worker method's tokens, a
//! wire name the trait does not declare is E0407 at the method's name (or its `rename`), and a
//! trait method the worker does not expose is E0046 at the `serves` path.
//!
//! The items take no `self` and are `where Self: Sized`, so they never reach a method call or a
//! vtable: `dyn Trait` stays a type, which is what handles are typed with.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Path};

use crate::model::{Method, Output, Worker};

/// The contract items of a client trait, one per method.
pub fn declarations(client: &Worker) -> TokenStream {
    client
        .methods
        .iter()
        .map(|method| {
            let ident = wire_ident(&method.wire_name, method.wire_span);
            let params = method.params.iter().map(|param| {
                let (name, ty) = (&param.ident, &param.ty);
                quote!(#name: #ty)
            });
            let output = wire_output(method);
            // Named after the wire name, which may be camelCase for Node callers; spanned at it,
            // so a worker's error notes point at the trait's method.
            quote_spanned! {method.wire_span=>
                #[doc(hidden)]
                #[allow(non_snake_case, clippy::unused_unit)]
                fn #ident(#(#params),*) -> #output
                where
                    Self: ::core::marker::Sized;
            }
        })
        .collect()
}

/// For `#[multifrost::worker(serves = Trait)]`: the worker's exposed methods as an impl of
/// `Trait`'s contract, and a check that both use the same namespace. The bodies never run: no
/// caller can reach an item without `self` that is not named, and the trait hides them.
pub fn serves(worker: &Worker, path: &Path) -> TokenStream {
    let Worker { self_ty, krate, .. } = worker;
    // Errors about the whole impl point at the trait's name in `serves = path::Trait`.
    let span = path
        .segments
        .last()
        .map_or_else(|| path.span(), |last| last.ident.span());
    let items = worker.methods.iter().map(|method| {
        let ident = wire_ident(&method.wire_name, method.wire_span);
        let types = method.params.iter().map(|param| &param.ty);
        let output = wire_output(method);
        // The item's own tokens carry the wire name's span, so "not a member of trait" points
        // at the method's name (or `rename`); the types keep theirs, for mismatches.
        // `-> ()` is written out (the result's tokens, for mismatches) even where the method
        // returns nothing.
        quote_spanned! {method.wire_span=>
            #[allow(clippy::unused_unit)]
            fn #ident(#(_: #types),*) -> #output {
                ::core::unreachable!("a contract signature, checked at compile time and never called")
            }
        }
    });
    let namespace = match &worker.namespace {
        Some(namespace) => quote!(#namespace),
        None => quote!(#krate::protocol::DEFAULT_NAMESPACE),
    };
    let message = format!(
        "`{}` answers in another namespace than the client trait it serves calls in: give both \
         the same `namespace = \"...\"`",
        worker.name
    );
    // The whole header carries that span, so "not all trait items implemented" points at it.
    let header = respan(quote!(impl #path for #self_ty), span);
    let check = quote_spanned! {span=>
        const _: () = ::core::assert!(
            #krate::__private::same_namespace(#namespace, <dyn #path as #krate::Service>::NAMESPACE),
            #message,
        );
    };
    let body = quote_spanned!(span=> { #(#items)* });
    quote! {
        #[automatically_derived]
        #header #body

        #check
    }
}

/// `tokens` with every token at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = inner.into();
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The wire result type of a method: what its client method decodes.
fn wire_output(method: &Method) -> TokenStream {
    match &method.output {
        Output::Unit => quote_spanned!(unit_span(method)=> ()),
        Output::Value(ty) | Output::Result { ok: ty, .. } => quote!(#ty),
    }
}

/// Where a mismatch on a result of `()` points: the written `()`, or the signature's end.
fn unit_span(method: &Method) -> Span {
    match &method.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => method.sig.paren_token.span.close(),
    }
}

/// The contract item's name for a wire name: the name itself when it is an identifier (`add`,
/// `lastIndexOf`, `r#type`), or, for a name that is not one (`get-info`), a deterministic
/// spelling (`__wire_get_u2d_info`) that both macros compute alike.
pub fn wire_ident(wire_name: &str, span: Span) -> Ident {
    let parsed = syn::parse_str::<Ident>(wire_name)
        .or_else(|_| syn::parse_str::<Ident>(&format!("r#{wire_name}")));
    if let Ok(mut ident) = parsed {
        ident.set_span(span);
        return ident;
    }
    let mut spelled = String::from("__wire_");
    for c in wire_name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            spelled.push(c);
        } else {
            spelled.push_str(&format!("_u{:x}_", u32::from(c)));
        }
    }
    Ident::new(&spelled, span)
}
