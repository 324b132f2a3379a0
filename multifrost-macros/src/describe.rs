//! The worker's self-description: `Worker::describe`, the answer to `multifrost.describe`.
//! Each exposed method with its wire name, parameters and their types as written, optional
//! parameters, return type and the first line of its doc comment.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Attribute, Expr, ExprLit, Lit, Meta};

use crate::model::{Method, Output, Worker};
use crate::syntax::type_text;

/// `fn describe(&self) -> Description`, for the `impl Worker` block.
pub fn expand(worker: &Worker) -> TokenStream {
    let krate = &worker.krate;
    let methods = worker
        .methods
        .iter()
        .map(|method| method_info(worker, method));
    quote! {
        fn describe(&self) -> #krate::child::Description {
            #krate::__private::description(
                #krate::Worker::namespace(self),
                &[#(#methods),*],
            )
        }
    }
}

fn method_info(worker: &Worker, method: &Method) -> TokenStream {
    let krate = &worker.krate;
    let name = &method.wire_name;
    let params = method.params.iter().map(|param| {
        let name = param.ident.unraw().to_string();
        let ty = type_text(&param.ty);
        let optional = param.omittable;
        quote!((#name, #ty, #optional))
    });
    let returns = match &method.output {
        Output::Unit => None,
        Output::Value(ty) | Output::Result { ok: ty, .. } => Some(type_text(ty)),
    };
    let returns = optional_str(returns);
    let doc = optional_str(first_doc_line(&method.docs));
    quote! {
        #krate::__private::MethodInfo {
            name: #name,
            params: &[#(#params),*],
            returns: #returns,
            doc: #doc,
        }
    }
}

fn optional_str(text: Option<String>) -> TokenStream {
    match text {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    }
}

/// The first non-empty line of the doc comments.
fn first_doc_line(docs: &[Attribute]) -> Option<String> {
    docs.iter().find_map(|attr| match &attr.meta {
        Meta::NameValue(meta) => match &meta.value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(text),
                ..
            }) => {
                let line = text.value().trim().to_owned();
                (!line.is_empty()).then_some(line)
            }
            _ => None,
        },
        _ => None,
    })
}
