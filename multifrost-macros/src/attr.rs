//! The attribute syntax: `#[multifrost::worker(namespace = "...", crate = "...", serves =
//! Trait)]` on the impl block, `#[multifrost::client(namespace = "...", crate = "...")]` on a
//! trait, and `#[multifrost(rename = "...")]` / `#[multifrost(skip)]` on their methods.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Attribute, LitStr, Path};

use crate::errors::Errors;

/// The name of the helper attribute on methods.
const HELPER: &str = "multifrost";

/// The arguments of `#[multifrost::worker(...)]` and `#[multifrost::client(...)]`.
pub struct WorkerArgs {
    /// `namespace = "..."`: the namespace the worker answers in.
    pub namespace: Option<LitStr>,
    /// `crate = "..."`: where the `multifrost` crate is, when it was renamed.
    pub krate: Path,
    /// `serves = path::to::Trait` (workers only): the client trait the impl block serves.
    pub serves: Option<Path>,
}

impl WorkerArgs {
    /// Parses the arguments of `#[multifrost::worker(...)]`; problems are recorded and
    /// defaults used instead.
    pub fn parse(tokens: TokenStream, errors: &mut Errors) -> WorkerArgs {
        Self::parse_form(tokens, true, errors)
    }

    /// Parses the arguments of `#[multifrost::client(...)]`, which takes no `serves`.
    pub fn parse_client(tokens: TokenStream, errors: &mut Errors) -> WorkerArgs {
        Self::parse_form(tokens, false, errors)
    }

    fn parse_form(tokens: TokenStream, is_worker: bool, errors: &mut Errors) -> WorkerArgs {
        let mut namespace: Option<LitStr> = None;
        let mut krate: Option<Path> = None;
        let mut serves: Option<Path> = None;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("namespace") {
                let value: LitStr = meta.value()?.parse()?;
                if namespace.is_some() {
                    return Err(meta.error("`namespace` is given twice"));
                }
                if value.value().is_empty() {
                    return Err(syn::Error::new(
                        value.span(),
                        "the namespace cannot be empty: leave `namespace` out for the default one",
                    ));
                }
                namespace = Some(value);
                Ok(())
            } else if meta.path.is_ident("crate") {
                let value: LitStr = meta.value()?.parse()?;
                if krate.is_some() {
                    return Err(meta.error("`crate` is given twice"));
                }
                krate = Some(value.parse().map_err(|_| {
                    syn::Error::new(value.span(), "`crate` takes the path to the multifrost crate, e.g. `crate = \"::my_rpc\"`")
                })?);
                Ok(())
            } else if is_worker && meta.path.is_ident("serves") {
                let value: Path = meta.value()?.parse()?;
                if serves.is_some() {
                    return Err(meta.error("`serves` is given twice"));
                }
                serves = Some(value);
                Ok(())
            } else if is_worker {
                Err(unknown_argument(
                    &meta,
                    "`namespace = \"...\"`, `serves = ClientTrait` or `crate = \"path::to::multifrost\"`",
                ))
            } else {
                Err(unknown_argument(
                    &meta,
                    "`namespace = \"...\"` or `crate = \"path::to::multifrost\"`",
                ))
            }
        });
        if let Err(error) = parser.parse2(tokens) {
            errors.push(error);
        }
        WorkerArgs {
            namespace,
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::multifrost)),
            serves,
        }
    }
}

/// The `#[multifrost(...)]` attributes of one method.
#[derive(Default)]
pub struct MethodAttrs {
    /// `rename = "..."`: the name callers use instead of the Rust name.
    pub rename: Option<LitStr>,
    /// `skip`: keep a `pub` method out of the worker; its span, for error messages.
    pub skip: Option<Span>,
}

impl MethodAttrs {
    /// Removes the `#[multifrost(...)]` attributes from `attrs` (the compiler does not know
    /// them) and parses them.
    pub fn take(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> MethodAttrs {
        let mut parsed = MethodAttrs::default();
        attrs.retain(|attr| {
            if !attr.path().is_ident(HELPER) {
                return true;
            }
            if let Err(error) = parsed.parse_one(attr) {
                errors.push(error);
            }
            false
        });
        parsed
    }

    fn parse_one(&mut self, attr: &Attribute) -> syn::Result<()> {
        if !matches!(attr.meta, syn::Meta::List(_)) {
            return Err(syn::Error::new_spanned(
                attr,
                "expected `#[multifrost(rename = \"...\")]` or `#[multifrost(skip)]`",
            ));
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let value: LitStr = meta.value()?.parse()?;
                if self.rename.is_some() {
                    return Err(meta.error("`rename` is given twice"));
                }
                self.rename = Some(value);
                Ok(())
            } else if meta.path.is_ident("skip") {
                if self.skip.is_some() {
                    return Err(meta.error("`skip` is given twice"));
                }
                self.skip = Some(
                    meta.path
                        .get_ident()
                        .map_or_else(Span::call_site, |ident| ident.span()),
                );
                Ok(())
            } else {
                Err(unknown_argument(&meta, "`rename = \"...\"` or `skip`"))
            }
        })
    }
}

/// Removes stray `#[multifrost(...)]` attributes from an item where they mean nothing, with an
/// error for each.
pub fn reject_helpers(attrs: &mut Vec<Attribute>, errors: &mut Errors) {
    attrs.retain(|attr| {
        if !attr.path().is_ident(HELPER) {
            return true;
        }
        errors.push(syn::Error::new_spanned(
            attr,
            "`#[multifrost(...)]` only applies to methods of a `#[multifrost::worker]` impl block",
        ));
        false
    });
}

fn unknown_argument(meta: &ParseNestedMeta<'_>, expected: &str) -> syn::Error {
    let name = meta
        .path
        .get_ident()
        .map_or_else(|| "this".to_owned(), |ident| format!("`{ident}`"));
    meta.error(format!("unknown argument {name}: expected {expected}"))
}
