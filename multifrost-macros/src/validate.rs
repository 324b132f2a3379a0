//! The checks: what `#[multifrost::worker]` cannot expose, each reported with a span on the
//! offending tokens and a message that says why and what to do instead. Every error is collected
//! and reported at once.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::{FnArg, Ident, ItemImpl, LitStr, Pat, ReturnType, Signature, Type};

use crate::model::{is_context, names_context, ungroup, Hidden, Method};

/// Names the generated clients already use for their own API.
const CLIENT_API: &[&str] = &["with_options", "options", "new", "caller"];

/// The errors found so far.
#[derive(Default)]
pub struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// One `compile_error!` per error.
    pub fn to_compile_errors(&self) -> TokenStream {
        self.errors
            .iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }
}

/// Checks that the attribute is on an inherent impl of a named, non-generic type; returns that
/// type's name.
pub fn check_impl(item: &ItemImpl, errors: &mut Errors) -> Option<Ident> {
    if let Some((bang, path, for_token)) = &item.trait_ {
        errors.spanned(
            quote!(#bang #path #for_token),
            "#[multifrost::worker] goes on an inherent impl block (`impl Math { .. }`), not on a \
             trait impl: it implements `Worker` itself from the block's `pub` methods",
        );
        return None;
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        let tokens = if item.generics.params.is_empty() {
            item.generics.where_clause.to_token_stream()
        } else {
            item.generics.to_token_stream()
        };
        errors.spanned(tokens, generic_impl_message());
        return None;
    }
    let Type::Path(path) = ungroup(&item.self_ty) else {
        errors.spanned(
            &item.self_ty,
            "#[multifrost::worker] needs a named type (`impl Math { .. }`): the generated clients \
             are named after it",
        );
        return None;
    };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || !last.arguments.is_none() {
        errors.spanned(&item.self_ty, generic_impl_message());
        return None;
    }
    Some(last.ident.clone())
}

fn generic_impl_message() -> &'static str {
    "#[multifrost::worker] does not support generic impl blocks: a worker and its clients need \
     one concrete type; put the attribute on an impl of a concrete type (for example a wrapper \
     struct around the generic one)"
}

/// Checks the signature of a method that would be exposed. Returns whether it can be.
pub fn check_signature(sig: &Signature, errors: &mut Errors) -> bool {
    let name = &sig.ident;
    let mut ok = true;
    let mut fail = |tokens: &dyn ToTokens, message: String| {
        errors.spanned(tokens, message);
        ok = false;
    };

    if !sig.generics.params.is_empty() {
        fail(&sig.generics, generic_method_message(name));
    } else if let Some(where_clause) = &sig.generics.where_clause {
        fail(where_clause, generic_method_message(name));
    }
    if let Some(unsafety) = &sig.unsafety {
        fail(
            unsafety,
            format!("`{name}` is `unsafe`: callers in another process cannot uphold its safety contract; make it safe or keep it out with `#[multifrost(skip)]`"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        fail(
            variadic,
            format!("`{name}` is variadic, which a worker method cannot be"),
        );
    }
    if let Some(receiver) = sig.receiver() {
        if let Some(message) = receiver_problem(name, &receiver.ty) {
            fail(receiver, message);
        }
    }

    let mut context_seen = false;
    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        if is_context(&arg.ty) {
            if context_seen {
                fail(
                    arg,
                    format!(
                        "`{name}` takes the call context twice: take one `&CallContext` parameter"
                    ),
                );
            }
            context_seen = true;
            continue;
        }
        if !matches!(&*arg.pat, Pat::Ident(pat) if pat.subpat.is_none()) {
            fail(
                &arg.pat,
                "patterns are not supported in the arguments of an exposed method: the argument's \
                 name is used in error messages and in the client; name it (`point: Point`) and \
                 destructure it in the body"
                    .to_owned(),
            );
        }
        if let Some(message) = argument_type_problem(&arg.ty) {
            fail(&arg.ty, message);
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some(message) = return_type_problem(ty) {
            fail(ty, message);
        }
    }
    ok
}

fn generic_method_message(name: &Ident) -> String {
    format!(
        "`{name}` is generic, which an exposed method cannot be: its arguments are decoded into \
         the declared types and the client is generated from the signature; use concrete types, \
         or keep it out with `#[multifrost(skip)]`"
    )
}

/// What is wrong with the receiver's type (`&self` is `&Self`), if anything.
fn receiver_problem(name: &Ident, ty: &Type) -> Option<String> {
    match ungroup(ty) {
        Type::Reference(reference)
            if reference.mutability.is_none() && is_self(&reference.elem) =>
        {
            None
        }
        Type::Reference(reference) if reference.mutability.is_some() => Some(format!(
            "`{name}` takes `&mut self`, but a worker is shared by concurrent calls, so exposed \
             methods take `&self`; keep mutable state behind interior mutability (`Mutex`, \
             `RwLock`, atomics)"
        )),
        ty if is_self(ty) => Some(format!(
            "`{name}` takes `self` by value, but a worker is shared by every call and is never \
             given away; take `&self`"
        )),
        ty => Some(format!(
            "`{name}` takes `self: {}`; exposed methods take `&self` (the runtime already shares \
             the worker between calls)",
            type_text(ty)
        )),
    }
}

fn is_self(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self"))
}

/// What makes `ty` unusable as a decoded argument, if anything.
fn argument_type_problem(ty: &Type) -> Option<String> {
    match ungroup(ty) {
        Type::ImplTrait(_) => Some(
            "`impl Trait` arguments are not supported: the argument is decoded from the call, so \
             it needs a concrete type (for example `Vec<i64>` rather than `impl IntoIterator`)"
                .to_owned(),
        ),
        Type::Reference(reference)
            if reference.mutability.is_some() && names_context(&reference.elem) =>
        {
            Some("the call context is shared: take it as `&CallContext`, not `&mut`".to_owned())
        }
        Type::Reference(reference) => Some(format!(
            "reference arguments are not supported: arguments are decoded from the call into owned \
             values; take {}",
            owned_suggestion(&reference.elem)
        )),
        ty if names_context(ty) => {
            Some("take the call context by reference: `ctx: &CallContext`".to_owned())
        }
        ty => nested_problem(ty, "argument"),
    }
}

/// What makes `ty` unusable as a returned value, if anything.
fn return_type_problem(ty: &Type) -> Option<String> {
    match ungroup(ty) {
        Type::ImplTrait(_) => Some(
            "`impl Trait` return types are not supported: the client decodes the result, so it \
             needs a concrete type"
                .to_owned(),
        ),
        Type::Reference(reference) => Some(format!(
            "returning a reference is not supported: the client decodes the result into an owned \
             value; return {}",
            owned_suggestion(&reference.elem)
        )),
        ty => nested_problem(ty, "result"),
    }
}

/// `String` for `str`, `Vec<T>` for `[T]`, else `T`.
fn owned_suggestion(elem: &Type) -> String {
    match ungroup(elem) {
        Type::Path(path) if path.path.is_ident("str") => "`String` instead of `&str`".to_owned(),
        Type::Slice(slice) => {
            let item = type_text(&slice.elem);
            format!("`Vec<{item}>` instead of `&[{item}]`")
        }
        elem => format!("`{}` by value", type_text(elem)),
    }
}

/// A type as a person would write it (`Box<Self>`, not `Box < Self >`).
fn type_text(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (spaced, tight) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ::", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// A reference or `impl Trait` nested inside `ty` (`Vec<&str>`, `Option<impl Trait>`).
fn nested_problem(ty: &Type, what: &str) -> Option<String> {
    #[derive(Default)]
    struct Finder {
        reference: bool,
        impl_trait: bool,
    }
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, _: &'ast syn::TypeReference) {
            self.reference = true;
        }
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.impl_trait = true;
        }
    }
    let mut finder = Finder::default();
    finder.visit_type(ty);
    if finder.impl_trait {
        Some(format!(
            "`impl Trait` is not supported inside an {what} type: use a concrete type"
        ))
    } else if finder.reference {
        Some(format!(
            "borrowed types are not supported inside an {what} type: values crossing the wire are \
             owned; use `String` instead of `&str`, `Vec<T>` instead of `&[T]`"
        ))
    } else {
        None
    }
}

/// The error for `rename` on a method that is not exposed.
pub fn rename_on_hidden(name: &Ident, rename: &LitStr, hidden: Hidden) -> syn::Error {
    let why = match hidden {
        Hidden::NotPub => "it is not `pub`",
        Hidden::NoSelf => "it takes no `&self`",
        Hidden::Underscore => "its name starts with `_`",
        Hidden::Skipped => "it is `#[multifrost(skip)]`",
    };
    syn::Error::new(
        rename.span(),
        format!(
            "`rename` has no effect on `{name}`, which is not exposed because {why}; remove the \
             `rename`, or expose the method (a `pub` method taking `&self`)"
        ),
    )
}

/// Checks the names across methods: wire names that cannot be called or are taken twice, and
/// Rust names the clients already use. Methods that fail are removed.
pub fn check_names(worker: &Ident, methods: &mut Vec<Method>, errors: &mut Errors) {
    let mut taken: HashMap<String, Ident> = HashMap::new();
    methods.retain(|method| {
        let rust_name = method.ident.unraw().to_string();
        if CLIENT_API.contains(&rust_name.as_str()) {
            errors.spanned(
                &method.ident,
                format!(
                    "`{rust_name}` is a method of the generated clients (`{worker}Client`, \
                     `{worker}BlockingClient`), so an exposed method cannot have this name; rename \
                     the Rust method and keep the wire name with \
                     `#[multifrost(rename = \"{rust_name}\")]`"
                ),
            );
            return false;
        }
        let wire = &method.wire_name;
        if wire.is_empty() {
            errors.push(syn::Error::new(method.wire_span, "the wire name cannot be empty"));
            return false;
        }
        if wire.starts_with('_') {
            errors.push(syn::Error::new(
                method.wire_span,
                format!("`{wire}` starts with `_`, which makes it private in the protocol: no caller could call it"),
            ));
            return false;
        }
        if let Some(first) = taken.get(wire) {
            errors.push(syn::Error::new(
                method.wire_span,
                format!(
                    "two exposed methods would be called `{wire}` (`{first}` and `{}`): each \
                     needs its own wire name; give one of them another \
                     `#[multifrost(rename = \"...\")]`",
                    method.ident
                ),
            ));
            return false;
        }
        taken.insert(wire.clone(), method.ident.clone());
        true
    });
}
