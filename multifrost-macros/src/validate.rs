//! The checks, over the block as `model` read it (thiserror's `valid.rs`): what
//! `#[multifrost::worker]` cannot expose, each reported with a span on the offending tokens and a
//! message that says why and what to do instead. Every error is collected and reported at once;
//! what passed still expands, so these are the only errors the user sees.

use std::collections::HashMap;

use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::{FnArg, Ident, LitStr, Pat, ReturnType, Signature, Type};

use crate::errors::Errors;
use crate::model::{
    Block, Hidden, Member, Method, NotExposed, Origin, TraitBlock, TraitMember, Worker,
};
use crate::syntax::{is_context, is_self, names_context, type_text, ungroup};

/// Names the generated clients already use for their own API.
const CLIENT_API: &[&str] = &["with_options", "options", "new", "caller"];

/// The methods of the `Worker` trait, which the macro implements for the type: an inherent
/// method of the same name would shadow them in method calls.
const WORKER_API: &[&str] = &["list_functions", "dispatch", "namespace"];

/// Checks the block and returns the worker made of the methods that passed, or `None` when the
/// block itself is unusable. Errors come in source order: the attribute's arguments, then each
/// item's attributes followed by its checks, then the names across methods.
pub fn check(mut block: Block, errors: &mut Errors) -> Option<Worker> {
    errors.append(std::mem::take(&mut block.args_errors));
    // One error for an unusable block: its methods' attributes and signatures do not matter.
    let name = check_impl(&block, errors)?;
    let Block {
        self_ty,
        args,
        members,
        ..
    } = block;
    let mut methods = Vec::new();
    let mut not_exposed = Vec::new();
    for member in members {
        let mut method = match member {
            Member::Method(method) => *method,
            Member::Other { attr_errors } => {
                errors.append(attr_errors);
                continue;
            }
        };
        errors.append(std::mem::take(&mut method.attr_errors));
        if let Some(hidden) = method.hidden {
            if let Some(rename) = &method.attrs.rename {
                errors.push(rename_on_hidden(&method.ident, rename, hidden));
            }
            not_exposed.extend(not_exposed_stub(&method, hidden));
            continue;
        }
        if check_signature(&method.sig, Form::Worker, errors) {
            methods.push(method);
        }
    }
    check_names(&name, &mut methods, Form::Worker, errors);
    Some(Worker {
        self_ty,
        name,
        krate: args.krate,
        namespace: args.namespace,
        methods,
        not_exposed,
        serves: args.serves,
        origin: Origin::Impl,
    })
}

/// Which attribute a signature is checked for: a few messages differ.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Worker,
    ClientTrait,
}

/// Checks a `#[multifrost::client]` trait and returns it (its methods' helper attributes
/// removed) with the client model made of the methods that passed, or `None` when the trait
/// itself is unusable. Like [`check`], every error is collected.
pub fn check_client_trait(
    mut block: TraitBlock,
    errors: &mut Errors,
) -> Option<(syn::ItemTrait, Worker)> {
    errors.append(std::mem::take(&mut block.args_errors));
    let TraitBlock {
        item,
        args,
        members,
        ..
    } = block;
    if !check_trait_header(&item, errors) {
        return None;
    }
    let mut methods = Vec::new();
    for member in members {
        let (mut method, has_body) = match member {
            TraitMember::Method { method, has_body } => (*method, has_body),
            TraitMember::Other {
                tokens,
                attr_errors,
            } => {
                errors.append(attr_errors);
                errors.spanned(
                    tokens,
                    "a #[multifrost::client] trait holds only method signatures (`async fn \
                        add(&self, a: i64, b: i64) -> i64;`): each becomes a client method",
                );
                continue;
            }
        };
        errors.append(std::mem::take(&mut method.attr_errors));
        if let Some(skip) = method.attrs.skip {
            errors.push(syn::Error::new(
                skip,
                format!(
                    "`skip` has no place in a #[multifrost::client] trait: every method of the \
                        trait is a client method; remove `{}` from the trait instead",
                    method.ident
                ),
            ));
            continue;
        }
        let mut ok = check_signature(&method.sig, Form::ClientTrait, errors);
        if has_body {
            ok = false;
            errors.spanned(
                &method.sig,
                format!(
                    "`{}` has a body, which would never run: the worker runs the method, and a \
                        #[multifrost::client] trait only declares its signature; end it with `;`",
                    method.ident
                ),
            );
        }
        if ok {
            methods.push(method);
        }
    }
    let name = item.ident.clone();
    check_names(&name, &mut methods, Form::ClientTrait, errors);
    let self_ty = syn::parse_quote!(dyn #name);
    let client = Worker {
        self_ty,
        name,
        krate: args.krate,
        namespace: args.namespace,
        methods,
        not_exposed: Vec::new(),
        serves: None,
        origin: Origin::Trait {
            vis: item.vis.clone(),
        },
    };
    Some((item, client))
}

/// Checks what a client trait cannot be: generic, `unsafe`, `auto`, or with supertraits (the
/// generated `dyn Trait` names one concrete interface). Returns whether it is usable.
fn check_trait_header(item: &syn::ItemTrait, errors: &mut Errors) -> bool {
    let name = &item.ident;
    let mut ok = true;
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        let tokens = if item.generics.params.is_empty() {
            item.generics.where_clause.to_token_stream()
        } else {
            item.generics.to_token_stream()
        };
        errors.spanned(
            tokens,
            format!(
                "a #[multifrost::client] trait cannot be generic: `{name}` describes one remote \
                    interface, whose arguments and results have concrete types"
            ),
        );
        ok = false;
    }
    if let Some(unsafety) = &item.unsafety {
        errors.spanned(
            unsafety,
            "a #[multifrost::client] trait cannot be `unsafe`: it is implemented by the macro, \
                never by hand",
        );
        ok = false;
    }
    if let Some(auto) = &item.auto_token {
        errors.spanned(
            auto,
            "a #[multifrost::client] trait cannot be an auto trait",
        );
        ok = false;
    }
    if item.colon_token.is_some() {
        errors.spanned(
            &item.supertraits,
            format!(
                "a #[multifrost::client] trait cannot have supertraits: `{name}` is the whole \
                    interface of a worker; list every method in it"
            ),
        );
        ok = false;
    }
    ok
}

/// A hidden method that callers may still try through a client: one taking `&self` (the
/// others do not look like worker methods) whose name the clients do not already use.
fn not_exposed_stub(method: &Method, hidden: Hidden) -> Option<NotExposed> {
    let receiver = method.sig.receiver()?;
    let name = method.ident.unraw().to_string();
    if receiver_problem(&method.ident, &receiver.ty).is_some()
        || CLIENT_API.contains(&name.as_str())
    {
        return None;
    }
    Some(NotExposed {
        ident: method.ident.clone(),
        hidden,
        arity: method.params.len(),
    })
}

/// Checks that the attribute is on an inherent impl of a named, non-generic type; returns that
/// type's name.
fn check_impl(block: &Block, errors: &mut Errors) -> Option<Ident> {
    if let Some((bang, path, for_token)) = &block.trait_ {
        errors.spanned(
            quote!(#bang #path #for_token),
            "#[multifrost::worker] goes on an inherent impl block (`impl Math { .. }`), not on a \
             trait impl: it implements `Worker` itself from the block's `pub` methods",
        );
        return None;
    }
    if !block.generics.params.is_empty() || block.generics.where_clause.is_some() {
        let tokens = if block.generics.params.is_empty() {
            block.generics.where_clause.to_token_stream()
        } else {
            block.generics.to_token_stream()
        };
        errors.spanned(tokens, generic_impl_message());
        return None;
    }
    let Type::Path(path) = ungroup(&block.self_ty) else {
        errors.spanned(
            &block.self_ty,
            "#[multifrost::worker] needs a named type (`impl Math { .. }`): the generated clients \
             are named after it",
        );
        return None;
    };
    let last = path.path.segments.last()?;
    if path.qself.is_some() || !last.arguments.is_none() {
        errors.spanned(&block.self_ty, generic_impl_message());
        return None;
    }
    Some(last.ident.clone())
}

fn generic_impl_message() -> &'static str {
    "#[multifrost::worker] does not support generic impl blocks: a worker and its clients need \
     one concrete type; put the attribute on an impl of a concrete type (for example a wrapper \
     struct around the generic one)"
}

/// Checks the signature of a method that would be exposed (or, for a client trait, called).
/// Returns whether it can be.
fn check_signature(sig: &Signature, form: Form, errors: &mut Errors) -> bool {
    let name = &sig.ident;
    let mut ok = true;
    let mut fail = |tokens: &dyn ToTokens, message: String| {
        errors.spanned(tokens, message);
        ok = false;
    };

    if !sig.generics.params.is_empty() {
        fail(&sig.generics, generic_method_message(name, form));
    } else if let Some(where_clause) = &sig.generics.where_clause {
        fail(where_clause, generic_method_message(name, form));
    }
    if let Some(unsafety) = &sig.unsafety {
        let instead = match form {
            Form::Worker => "make it safe or keep it out with `#[multifrost(skip)]`",
            Form::ClientTrait => "remove `unsafe`",
        };
        fail(
            unsafety,
            format!("`{name}` is `unsafe`: callers in another process cannot uphold its safety contract; {instead}"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        fail(
            variadic,
            format!("`{name}` is variadic, which a worker method cannot be"),
        );
    }
    match (sig.receiver(), form) {
        (Some(receiver), Form::Worker) => {
            if let Some(message) = receiver_problem(name, &receiver.ty) {
                fail(receiver, message);
            }
        }
        (Some(receiver), Form::ClientTrait) => {
            if let Some(message) = client_receiver_problem(name, &receiver.ty) {
                fail(receiver, message);
            }
        }
        // A worker's function without `self` is not exposed, so never checked here.
        (None, _) => fail(
            &sig.ident,
            format!(
                "`{name}` takes no `self`: the methods of a #[multifrost::client] trait are \
                 called on its client; take `&self`"
            ),
        ),
    }

    let mut context_seen = false;
    for input in &sig.inputs {
        let FnArg::Typed(arg) = input else { continue };
        if form == Form::ClientTrait {
            if is_context(&arg.ty) {
                fail(
                    arg,
                    format!(
                        "the call context is the worker's: `{name}` in a #[multifrost::client] \
                         trait lists only the arguments a caller sends; remove this parameter \
                         (set metadata with `call_with(CallOptions::new().metadata(..))`)"
                    ),
                );
                continue;
            }
            if let Some(at) = mentions_self(&arg.ty) {
                fail(&at, self_in_trait_message(name));
                continue;
            }
        }
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
        } else if let (Form::ClientTrait, Some(at)) = (form, mentions_self(ty)) {
            fail(&at, self_in_trait_message(name));
        }
    }
    ok
}

fn generic_method_message(name: &Ident, form: Form) -> String {
    let tail = match form {
        Form::Worker => "use concrete types, or keep it out with `#[multifrost(skip)]`",
        Form::ClientTrait => "use concrete types",
    };
    format!(
        "`{name}` is generic, which an exposed method cannot be: its arguments are decoded into \
         the declared types and the client is generated from the signature; {tail}"
    )
}

/// What is wrong with the receiver of a client trait's method, if anything: the client's
/// methods take `&self`, whatever the worker's do.
fn client_receiver_problem(name: &Ident, ty: &Type) -> Option<String> {
    match ungroup(ty) {
        Type::Reference(reference)
            if reference.mutability.is_none() && is_self(&reference.elem) =>
        {
            None
        }
        ty => Some(format!(
            "`{name}` takes `self: {}`, but a client's methods take `&self`: one client makes \
             any number of calls, each with its own future",
            type_text(ty)
        )),
    }
}

/// The first `Self` in `ty`, if any.
fn mentions_self(ty: &Type) -> Option<proc_macro2::TokenStream> {
    #[derive(Default)]
    struct Finder(Option<proc_macro2::TokenStream>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_path(&mut self, path: &'ast syn::Path) {
            match path.segments.first() {
                Some(first) if first.ident == "Self" && self.0.is_none() => {
                    self.0 = Some(first.ident.to_token_stream());
                }
                _ => syn::visit::visit_path(self, path),
            }
        }
    }
    let mut finder = Finder::default();
    finder.visit_type(ty);
    finder.0
}

fn self_in_trait_message(name: &Ident) -> String {
    format!(
        "`Self` in `{name}` names no type: a #[multifrost::client] trait is implemented by no \
         type the parent sees; name the type crossing the wire"
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
fn rename_on_hidden(name: &Ident, rename: &LitStr, hidden: Hidden) -> syn::Error {
    let why = hidden.because();
    syn::Error::new(
        rename.span(),
        format!(
            "`rename` has no effect on `{name}`, which is not exposed because {why}; remove the \
             `rename`, or expose the method (a `pub` method taking `&self`)"
        ),
    )
}

/// Checks the names across methods: wire names that cannot be called or are taken twice, and
/// Rust names the clients or (for a worker) the `Worker` trait already use. Methods that fail
/// are removed.
fn check_names(worker: &Ident, methods: &mut Vec<Method>, form: Form, errors: &mut Errors) {
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
        if form == Form::Worker && WORKER_API.contains(&rust_name.as_str()) {
            errors.spanned(
                &method.ident,
                format!(
                    "`{rust_name}` is a method of the `Worker` trait, which #[multifrost::worker] \
                     implements for `{worker}`, so an exposed method cannot have this name: it \
                     would shadow the trait's method in calls like `worker.{rust_name}()`; rename \
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
