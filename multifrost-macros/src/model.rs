//! The worker as the generators see it: the impl block read into its exposed methods, each with
//! its wire name, positional arguments, context parameter and kind of return.
//!
//! Reading is lenient and checking is left to `validate`: a method that fails a check is
//! reported and left out, so the rest still expands and the user sees one error per mistake.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Pat, Path,
    PathArguments, ReturnType, Type, Visibility,
};

use crate::attr::{reject_helpers, MethodAttrs, WorkerArgs};
use crate::validate::{self, Errors};

/// A validated `#[multifrost::worker]` impl block.
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
}

/// One exposed method.
pub struct Method {
    /// The Rust name, also the name of the client method.
    pub ident: Ident,
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

impl Worker {
    /// Reads the impl block, stripping the helper attributes from it. Returns `None` when the
    /// block itself is unusable (not an inherent impl of a named, non-generic type).
    pub fn from_impl(item: &mut ItemImpl, args: WorkerArgs, errors: &mut Errors) -> Option<Worker> {
        let Some(name) = validate::check_impl(item, errors) else {
            // One error for the block; its methods' attributes only need to go.
            strip_helpers(item);
            return None;
        };
        let mut methods = Vec::new();
        for impl_item in &mut item.items {
            match impl_item {
                ImplItem::Fn(function) => {
                    let attrs = MethodAttrs::take(&mut function.attrs, errors);
                    if let Some(method) = Method::from_fn(function, attrs, errors) {
                        methods.push(method);
                    }
                }
                ImplItem::Const(item) => reject_helpers(&mut item.attrs, errors),
                ImplItem::Type(item) => reject_helpers(&mut item.attrs, errors),
                ImplItem::Macro(item) => reject_helpers(&mut item.attrs, errors),
                _ => {}
            }
        }
        validate::check_names(&name, &mut methods, errors);
        Some(Worker {
            self_ty: (*item.self_ty).clone(),
            name,
            krate: args.krate,
            namespace: args.namespace,
            methods,
        })
    }
}

impl Method {
    /// Reads one function of the impl block: `None` when it is not exposed or fails a check.
    fn from_fn(function: &ImplItemFn, attrs: MethodAttrs, errors: &mut Errors) -> Option<Method> {
        let sig = &function.sig;
        if let Some(hidden) = hidden_reason(function, &attrs) {
            if let Some(rename) = &attrs.rename {
                errors.push(validate::rename_on_hidden(&sig.ident, rename, hidden));
            }
            return None;
        }
        if !validate::check_signature(sig, errors) {
            return None;
        }
        let mut params = Vec::new();
        let mut context_at = None;
        let typed = sig.inputs.iter().filter_map(|input| match input {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        });
        for (index, arg) in typed.enumerate() {
            match &*arg.pat {
                _ if is_context(&arg.ty) => context_at = Some(index),
                Pat::Ident(pat) => params.push(Positional {
                    ident: pat.ident.clone(),
                    ty: (*arg.ty).clone(),
                    omittable: false,
                }),
                _ => unreachable!("check_signature rejects patterns"),
            }
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
        Some(Method {
            ident: sig.ident.clone(),
            wire_name,
            wire_span,
            is_async: sig.asyncness.is_some(),
            params,
            context_at,
            output: Output::from_return(&sig.output),
            docs: function
                .attrs
                .iter()
                .filter(|attr| attr.path().is_ident("doc"))
                .cloned()
                .collect(),
        })
    }
}

/// Removes every `#[multifrost(...)]` attribute from the block, without reading them.
fn strip_helpers(item: &mut ItemImpl) {
    let mut ignored = Errors::default();
    for impl_item in &mut item.items {
        match impl_item {
            ImplItem::Fn(item) => reject_helpers(&mut item.attrs, &mut ignored),
            ImplItem::Const(item) => reject_helpers(&mut item.attrs, &mut ignored),
            ImplItem::Type(item) => reject_helpers(&mut item.attrs, &mut ignored),
            ImplItem::Macro(item) => reject_helpers(&mut item.attrs, &mut ignored),
            _ => {}
        }
    }
}

/// Why `function` is not exposed, if it is not: exposed methods are `pub`, take `self` in some
/// form (the receiver is checked later), do not start with `_` and are not skipped.
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
    fn from_return(output: &ReturnType) -> Output {
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

/// `&CallContext` or `&path::to::CallContext`: a shared reference to a type named
/// `CallContext`.
pub fn is_context(ty: &Type) -> bool {
    match ungroup(ty) {
        Type::Reference(reference) => {
            reference.mutability.is_none() && names_context(&reference.elem)
        }
        _ => false,
    }
}

/// Whether `ty` is a path whose last segment is `CallContext` (behind any reference).
pub fn names_context(ty: &Type) -> bool {
    match ungroup(ty) {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|last| last.ident == "CallContext" && last.arguments.is_none()),
        _ => false,
    }
}

/// `Option<T>` (any type named `Option` with one type argument).
fn is_option(ty: &Type) -> bool {
    generic_args_of(ty, "Option").is_some_and(|types| types.count() == 1)
}

/// The type arguments of `ty` when it is a path whose last segment is `name<...>`.
fn generic_args_of<'a>(ty: &'a Type, name: &str) -> Option<impl Iterator<Item = &'a Type>> {
    let Type::Path(path) = ungroup(ty) else {
        return None;
    };
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    (last.ident == name).then(|| {
        args.args.iter().filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
    })
}

/// Looks through the invisible groups and parentheses that `macro_rules!` expansions leave.
pub fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        _ => ty,
    }
}
