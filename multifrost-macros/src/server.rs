//! The child side: `impl Worker for Math`, a dispatch table from wire name to method.
//!
//! Each arm decodes the positional arguments with `__private::Args`, runs the method and
//! encodes what it returned; a sync method's arm is the body of a job (`dispatch_blocking`)
//! that runs on the threads kept for sync methods, so heartbeats and other calls keep flowing.
//! The logic lives in `multifrost::__private`, the expansion only wires it up. Byte
//! strings (`syntax::is_bin`: `Vec<u8>`, `bytes::Bytes`...) are decoded and encoded as msgpack
//! bin, through the `_bin` twins of those helpers.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Ident;

use crate::describe;
use crate::model::{Method, Output, Worker};
use crate::syntax::is_bin;

pub fn expand(worker: &Worker) -> TokenStream {
    let Worker {
        self_ty,
        krate,
        namespace,
        methods,
        ..
    } = worker;
    let namespace = namespace.as_ref().map(|namespace| {
        quote! {
            fn namespace(&self) -> &str {
                #namespace
            }
        }
    });
    let wire_names = methods.iter().map(|method| &method.wire_name);
    let arms = methods
        .iter()
        .filter(|method| method.is_async)
        .map(|method| {
            let wire_name = &method.wire_name;
            let body = arm_body(worker, method);
            quote!(#wire_name => #body)
        });
    let sync_methods: Vec<&Method> = methods.iter().filter(|method| !method.is_async).collect();
    let describe = describe::expand(worker);
    // Sync methods are decoded, run and encoded by one job (`dispatch_blocking`), which the
    // runtime runs on its threads for sync methods; `dispatch` runs the same job there too, so
    // each method's code is generated once (and a type error in it reported once).
    let (blocking, blocking_first) = if sync_methods.is_empty() {
        (TokenStream::new(), TokenStream::new())
    } else {
        let sync_arms = sync_methods.iter().map(|method| {
            let wire_name = &method.wire_name;
            let body = arm_body(worker, method);
            // A closure that captures nothing: a plain `fn`, so the job needs no allocation
            // of its own, and the call it reads stays whole until the runtime drops it.
            quote! {
                #wire_name => ::core::option::Option::Some(#krate::__private::BlockingCall {
                    function: #wire_name,
                    run: |__multifrost_this: &Self, __multifrost_call: &#krate::IncomingCall|
                        -> ::core::result::Result<#krate::EncodedValue, #krate::CallError> {
                        let __multifrost_args = &__multifrost_call.args;
                        let __multifrost_context = &__multifrost_call.context;
                        #body
                    },
                }),
            }
        });
        let blocking = quote! {
            fn dispatch_blocking(
                &self,
                __multifrost_function: &str,
            ) -> ::core::option::Option<#krate::__private::BlockingCall<Self>> {
                match __multifrost_function {
                    #(#sync_arms)*
                    _ => ::core::option::Option::None,
                }
            }
        };
        let blocking_first = quote! {
            if let ::core::option::Option::Some(__multifrost_job) =
                <Self as #krate::Worker>::dispatch_blocking(&self, &__multifrost_call.function)
            {
                // Boxed: a sync method's call gets here only with a deadline (the runtime runs
                // the others as jobs), and its future would make every call's larger.
                return ::std::boxed::Box::pin(
                    #krate::__private::run_blocking_call(self, __multifrost_call, __multifrost_job),
                )
                .await;
            }
        };
        (blocking, blocking_first)
    };
    quote! {
        #[#krate::async_trait]
        #[automatically_derived]
        impl #krate::Worker for #self_ty {
            #namespace

            fn list_functions(&self) -> ::std::vec::Vec<::std::string::String> {
                #krate::__private::function_list(&[#(#wire_names),*])
            }

            #describe

            async fn dispatch(
                self: ::std::sync::Arc<Self>,
                __multifrost_call: #krate::IncomingCall,
            ) -> ::core::result::Result<#krate::EncodedValue, #krate::CallError> {
                #blocking_first
                let __multifrost_this = self;
                let #krate::IncomingCall {
                    function: __multifrost_function,
                    args: __multifrost_args,
                    context: __multifrost_context,
                } = __multifrost_call;
                match __multifrost_function.as_str() {
                    #(#arms)*
                    __multifrost_other => ::core::result::Result::Err(
                        #krate::CallError::function_not_found(__multifrost_other),
                    ),
                }
            }

            #blocking
        }
    }
}

/// What a call of `method` runs: decode the arguments, run the method, encode what it
/// returned; it reads `__multifrost_args` and `__multifrost_context`, both borrowed.
fn arm_body(worker: &Worker, method: &Method) -> TokenStream {
    let krate = &worker.krate;
    let wire_name = &method.wire_name;
    let positional = &method.params;
    let required = positional.iter().filter(|param| !param.omittable).count();
    let names = positional.iter().map(|param| param.ident.to_string());

    let bindings: Vec<_> = (0..positional.len())
        .map(|index| format_ident!("__multifrost_arg{}", index))
        .collect();
    let decode = if positional.is_empty() {
        quote!(#krate::__private::Args::new(#wire_name, &__multifrost_args, 0, &[])?;)
    } else {
        let lets = positional.iter().zip(&bindings).map(|(param, binding)| {
            let ty = &param.ty;
            let next = match (param.omittable, is_bin(ty)) {
                (true, false) => quote_spanned!(ty.span()=> __multifrost_args.decode_optional(__multifrost_values)?),
                (false, false) => quote_spanned!(ty.span()=> __multifrost_args.decode_next(__multifrost_values)?),
                (true, true) => {
                    quote_spanned!(ty.span()=> __multifrost_args.decode_optional_bin(__multifrost_values)?)
                }
                (false, true) => quote_spanned!(ty.span()=> __multifrost_args.decode_next_bin(__multifrost_values)?),
            };
            quote!(let #binding: #ty = #next;)
        });
        quote! {
            let __multifrost_values: &[#krate::EncodedValue] = &__multifrost_args;
            let mut __multifrost_args =
                #krate::__private::Args::new(#wire_name, __multifrost_values, #required, &[#(#names),*])?;
            #(#lets)*
        }
    };

    let mut call_args: Vec<TokenStream> = bindings.iter().map(|binding| quote!(#binding)).collect();
    if let Some(index) = method.context_at {
        call_args.insert(index, quote!(&__multifrost_context));
    }
    let self_ty = &worker.self_ty;
    let ident = &method.ident;
    let call = quote!(<#self_ty>::#ident(&__multifrost_this, #(#call_args),*));
    let returned = if method.is_async {
        quote!(#call.await)
    } else {
        call
    };

    let reply = match &method.output {
        Output::Unit => quote! {
            #returned;
            ::core::result::Result::Ok(#krate::EncodedValue::nil())
        },
        Output::Value(ty) => {
            let (value, encode) = encode_return(krate, wire_name, ty);
            quote! {
                let #value = #returned;
                #encode
            }
        }
        Output::Result { ok, error_span } => {
            let (value, encode) = encode_return(krate, wire_name, ok);
            let into_call_error = quote_spanned!(*error_span=> into_call_error(__multifrost_error));
            // Autoref specialization picks how the error becomes a `CallError` (see
            // `__private::IntoCallErrorKind`) and whether it also goes as data (see
            // `__private::ErrorData`): both need the concrete type, so they happen here.
            quote! {
                match #returned {
                    ::core::result::Result::Ok(#value) => #encode,
                    ::core::result::Result::Err(__multifrost_error) => {
                        #[allow(unused_imports)]
                        use #krate::__private::{
                            DerefErrorKind as _, DisplayErrorKind as _, IntoCallErrorKind as _,
                            NoErrorData as _, SerializeErrorData as _, StdErrorKind as _,
                        };
                        let __multifrost_data = (&&#krate::__private::ErrorData(&__multifrost_error))
                            .multifrost_error_data();
                        let __multifrost_reply = (&&&&#krate::__private::ErrorWrap(&__multifrost_error))
                            .multifrost_error_kind()
                            .#into_call_error;
                        ::core::result::Result::Err(#krate::__private::with_error_data(
                            __multifrost_reply,
                            __multifrost_data,
                        ))
                    }
                }
            }
        }
    };
    quote! {
        {
            #decode
            #reply
        }
    }
}

/// A binding for the returned value and `encode_return(wire_name, &binding)`, both spanned at
/// the returned type `ty`: a type that is not `Serialize` is then reported there, in the
/// signature, rather than at the attribute. The binding and its use share one span, so they
/// resolve to each other whatever hygiene that span carries (`ty` may come from a
/// `macro_rules!` expansion).
fn encode_return(krate: &syn::Path, wire_name: &str, ty: &syn::Type) -> (Ident, TokenStream) {
    let value = Ident::new("__multifrost_value", ty.span());
    let encode = if is_bin(ty) {
        quote_spanned!(ty.span()=> #krate::__private::encode_bin_return(#wire_name, #value))
    } else {
        quote_spanned!(ty.span()=> #krate::__private::encode_return(#wire_name, &#value))
    };
    (value, encode)
}
