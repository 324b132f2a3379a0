//! The worker as the macro sees it, in two stages.
//!
//! [`Block`] is the impl block as read: lenient, with no check made and nothing rejected (like
//! thiserror's `ast.rs`). Each function is read into a [`Method`] whatever its form, with why it
//! is hidden and the errors in its `#[multifrost(...)]` attributes, so that `validate` can judge
//! the whole block at once.
//!
//! [`TraitBlock`] is the same for a `#[multifrost::client]` trait: its signatures read into
//! the same [`Method`]s, so both forms share the checks and the client generator.
//!
//! [`Worker`] is what `validate` returns: the exposed methods that passed every check, which is
//! all the generators see.

use proc_macro2::Span;
use quote::format_ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, Generics, Ident, ImplItem, ImplItemFn, ItemImpl, ItemTrait, LitStr, Pat,
    Path, ReturnType, Signature, Token, TraitItem, Type, Visibility,
};

use crate::attr::{reject_helpers, MethodAttrs, WorkerArgs};
use crate::errors::Errors;
use crate::syntax::{generic_args_of, is_context, is_option, ungroup};

/// A `#[multifrost::worker]` impl block as written, before any check.
pub struct Block {
    /// `impl Trait for`, which the attribute does not accept.
    pub trait_: Option<(Option<Token![!]>, Path, Token![for])>,
    pub generics: Generics,
    /// The type the block is for, as written (`Math`).
    pub self_ty: Type,
    /// The arguments of the attribute, with defaults where they were wrong.
    pub args: WorkerArgs,
    /// The errors in the attribute's arguments.
    pub args_errors: Errors,
    /// The block's items, in source order.
    pub members: Vec<Member>,
}

/// An item of the block.
pub enum Member {
    /// A function, exposed or not.
    Method(Box<Method>),
    /// A const, type or macro item: its `#[multifrost(...)]` attributes are errors.
    Other { attr_errors: Errors },
}

/// A `#[multifrost::client]` trait as written, before any check.
pub struct TraitBlock {
    /// The trait, with the helper attributes removed from its methods.
    pub item: ItemTrait,
    /// The arguments of the attribute, with defaults where they were wrong.
    pub args: WorkerArgs,
    /// The errors in the attribute's arguments.
    pub args_errors: Errors,
    /// The trait's items, in source order.
    pub members: Vec<TraitMember>,
}

/// An item of a client trait.
pub enum TraitMember {
    /// A method signature; `has_body` when it came with a default body.
    Method { method: Box<Method>, has_body: bool },
    /// A const, type or macro item, which a client trait cannot hold: its tokens, for the error.
    Other {
        tokens: proc_macro2::TokenStream,
        attr_errors: Errors,
    },
}

/// Which form the clients are generated from.
pub enum Origin {
    /// `#[multifrost::worker]` on an impl block: the clients are `pub`.
    Impl,
    /// `#[multifrost::client]` on a trait: the clients have the trait's visibility.
    Trait { vis: Visibility },
}

/// A validated worker: its exposed methods that passed every check.
pub struct Worker {
    /// The type the impl block is for, as written (`Math`).
    pub self_ty: Type,
    /// Its name, from which the clients are named (`MathClient`, `MathBlockingClient`).
    pub name: Ident,
    /// The path to the `multifrost` crate.
    pub krate: Path,
    /// `namespace = "..."`, if given.
    pub namespace: Option<LitStr>,
    /// The exposed methods, in source order.
    pub methods: Vec<Method>,
    /// The methods taking `&self` that are not exposed, so that calling one through a client
    /// says why instead of "no method found".
    pub not_exposed: Vec<NotExposed>,
    /// `serves = path::to::ClientTrait`: the client trait whose contract the impl implements.
    pub serves: Option<Path>,
    /// The impl block or the client trait.
    pub origin: Origin,
}

/// A method taking `&self` that is not exposed.
pub struct NotExposed {
    pub ident: Ident,
    pub hidden: Hidden,
    /// How many arguments a caller would pass (the context parameter aside).
    pub arity: usize,
}

/// One function of the block, read as if it were exposed.
pub struct Method {
    /// The Rust name, also the name of the client method.
    pub ident: Ident,
    /// The signature as written, for the checks.
    pub sig: Signature,
    /// Its `#[multifrost(...)]` attributes.
    pub attrs: MethodAttrs,
    /// The errors in those attributes.
    pub attr_errors: Errors,
    /// Why it is not exposed, if it is not.
    pub hidden: Option<Hidden>,
    /// The name callers use: the Rust name or `rename`.
    pub wire_name: String,
    /// Where errors about the wire name point: the `rename` value, or the Rust name.
    pub wire_span: Span,
    pub is_async: bool,
    /// The parameters decoded from the call's positional arguments, in order.
    pub params: Vec<Positional>,
    /// Where the `&CallContext` parameter is among the parameters after `&self`, if any: it is
    /// filled from the call, not sent by the caller.
    pub context_at: Option<usize>,
    pub output: Output,
    /// The method's doc comments, copied onto the client methods.
    pub docs: Vec<Attribute>,
}

/// A parameter decoded from the call's positional arguments.
pub struct Positional {
    /// The parameter's name; a placeholder for a pattern, which `validate` rejects.
    pub ident: Ident,
    pub ty: Type,
    /// A trailing `Option<T>` parameter, which callers may leave out.
    pub omittable: bool,
}

/// What the method returns, decided from the syntax.
pub enum Output {
    /// Nothing or `()`: sent as nil.
    Unit,
    /// Any other type, sent encoded.
    Value(Type),
    /// `Result<T, E>` (any type named `Result`): `Ok` is sent, `Err` becomes an error reply.
    /// `error_span` points at `E`, or at the whole type for an alias like `io::Result<T>`.
    Result { ok: Type, error_span: Span },
}

/// Why a method of the impl block is not exposed.
#[derive(Clone, Copy)]
pub enum Hidden {
    NotPub,
    NoSelf,
    Underscore,
    Skipped,
}

impl Hidden {
    /// Why, for messages: "not exposed because {it}".
    pub fn because(self) -> &'static str {
        match self {
            Hidden::NotPub => "it is not `pub`",
            Hidden::NoSelf => "it takes no `&self`",
            Hidden::Underscore => "its name starts with `_`",
            Hidden::Skipped => "it is `#[multifrost(skip)]`",
        }
    }
}

impl Block {
    /// Reads the impl block and the attribute's arguments, removing the helper attributes from
    /// the block (the compiler does not know them).
    pub fn read(item: &mut ItemImpl, args: proc_macro2::TokenStream) -> Block {
        let mut args_errors = Errors::default();
        let args = WorkerArgs::parse(args, &mut args_errors);
        let members = item
            .items
            .iter_mut()
            .filter_map(|impl_item| {
                let mut attr_errors = Errors::default();
                match impl_item {
                    ImplItem::Fn(function) => {
                        let attrs = MethodAttrs::take(&mut function.attrs, &mut attr_errors);
                        let hidden = hidden_reason(function, &attrs);
                        let method = Method::read(
                            &function.sig,
                            &function.attrs,
                            hidden,
                            attrs,
                            attr_errors,
                        );
                        return Some(Member::Method(Box::new(method)));
                    }
                    ImplItem::Const(item) => reject_helpers(&mut item.attrs, &mut attr_errors),
                    ImplItem::Type(item) => reject_helpers(&mut item.attrs, &mut attr_errors),
                    ImplItem::Macro(item) => reject_helpers(&mut item.attrs, &mut attr_errors),
                    _ => return None,
                }
                Some(Member::Other { attr_errors })
            })
            .collect();
        Block {
            trait_: item.trait_.clone(),
            generics: item.generics.clone(),
            self_ty: (*item.self_ty).clone(),
            args,
            args_errors,
            members,
        }
    }
}

impl TraitBlock {
    /// Reads the trait and the attribute's arguments, removing the helper attributes from its
    /// methods. Every method is read as exposed: a client trait has no private methods.
    pub fn read(mut item: ItemTrait, args: proc_macro2::TokenStream) -> TraitBlock {
        let mut args_errors = Errors::default();
        let args = WorkerArgs::parse_client(args, &mut args_errors);
        let members = item
            .items
            .iter_mut()
            .map(|trait_item| {
                let mut attr_errors = Errors::default();
                match trait_item {
                    TraitItem::Fn(function) => {
                        let attrs = MethodAttrs::take(&mut function.attrs, &mut attr_errors);
                        reject_foreign_attributes(&mut function.attrs, &mut attr_errors);
                        let method =
                            Method::read(&function.sig, &function.attrs, None, attrs, attr_errors);
                        TraitMember::Method {
                            method: Box::new(method),
                            has_body: function.default.is_some(),
                        }
                    }
                    other => {
                        if let TraitItem::Const(syn::TraitItemConst { attrs, .. })
                        | TraitItem::Type(syn::TraitItemType { attrs, .. })
                        | TraitItem::Macro(syn::TraitItemMacro { attrs, .. }) = other
                        {
                            reject_helpers(attrs, &mut attr_errors);
                        }
                        TraitMember::Other {
                            tokens: quote::ToTokens::to_token_stream(other),
                            attr_errors,
                        }
                    }
                }
            })
            .collect();
        TraitBlock {
            item,
            args,
            args_errors,
            members,
        }
    }
}

/// Removes the attributes other than doc comments from a client trait's method, with an error
/// for each: the method becomes generated items (client methods, a contract signature), and an
/// attribute like `#[cfg]` would apply to some of them only.
fn reject_foreign_attributes(attrs: &mut Vec<Attribute>, errors: &mut Errors) {
    attrs.retain(|attr| {
        if attr.path().is_ident("doc") {
            return true;
        }
        errors.spanned(
            attr,
            "only doc comments and `#[multifrost(rename = \"...\")]` go on the methods of a \
             #[multifrost::client] trait: each method becomes generated client methods, which \
             do not carry other attributes",
        );
        false
    });
}

impl Method {
    /// Reads a function of either form from its signature and attributes; `hidden` is why an
    /// impl block's function is not exposed.
    fn read(
        sig: &Signature,
        fn_attrs: &[Attribute],
        hidden: Option<Hidden>,
        attrs: MethodAttrs,
        attr_errors: Errors,
    ) -> Method {
        let mut params = Vec::new();
        let mut context_at = None;
        let typed = sig.inputs.iter().filter_map(|input| match input {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        });
        for (index, arg) in typed.enumerate() {
            if is_context(&arg.ty) {
                context_at = Some(index);
                continue;
            }
            let ident = match &*arg.pat {
                Pat::Ident(pat) => pat.ident.clone(),
                pat => format_ident!("arg{}", index + 1, span = pat.span()),
            };
            params.push(Positional {
                ident,
                ty: (*arg.ty).clone(),
                omittable: false,
            });
        }
        // Trailing `Option` parameters may be omitted: every one after the last required one.
        for param in params.iter_mut().rev() {
            if !is_option(&param.ty) {
                break;
            }
            param.omittable = true;
        }
        let (wire_name, wire_span) = match &attrs.rename {
            Some(rename) => (rename.value(), rename.span()),
            None => (sig.ident.unraw().to_string(), sig.ident.span()),
        };
        Method {
            ident: sig.ident.clone(),
            sig: sig.clone(),
            hidden,
            attrs,
            attr_errors,
            wire_name,
            wire_span,
            is_async: sig.asyncness.is_some(),
            params,
            context_at,
            output: Output::read(&sig.output),
            docs: fn_attrs
                .iter()
                .filter(|attr| attr.path().is_ident("doc"))
                .cloned()
                .collect(),
        }
    }
}

/// Why `function` is not exposed, if it is not: exposed methods are `pub`, take `self` in some
/// form (`validate` checks the receiver), do not start with `_` and are not skipped.
fn hidden_reason(function: &ImplItemFn, attrs: &MethodAttrs) -> Option<Hidden> {
    if !matches!(function.vis, Visibility::Public(_)) {
        Some(Hidden::NotPub)
    } else if function.sig.receiver().is_none() {
        Some(Hidden::NoSelf)
    } else if function.sig.ident.unraw().to_string().starts_with('_') {
        Some(Hidden::Underscore)
    } else if attrs.skip.is_some() {
        Some(Hidden::Skipped)
    } else {
        None
    }
}

impl Output {
    fn read(output: &ReturnType) -> Output {
        let ty = match output {
            ReturnType::Default => return Output::Unit,
            ReturnType::Type(_, ty) => ungroup(ty),
        };
        match ty {
            Type::Tuple(tuple) if tuple.elems.is_empty() => Output::Unit,
            _ => match generic_args_of(ty, "Result")
                .map(Iterator::collect::<Vec<_>>)
                .as_deref()
            {
                Some([ok, rest @ ..]) => Output::Result {
                    ok: (*ok).clone(),
                    error_span: rest.first().map_or_else(|| ty.span(), |error| error.span()),
                },
                _ => Output::Value(ty.clone()),
            },
        }
    }
}
