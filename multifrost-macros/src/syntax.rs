//! Predicates on types as written: the macro sees syntax, not resolved types, so these decide by
//! the names in the path (`CallContext`, `Option`, `Result`, `Vec<u8>`).

use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type};

/// Looks through the invisible groups and parentheses that `macro_rules!` expansions leave.
pub fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        _ => ty,
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

/// Whether `ty` is a path whose last segment is `CallContext`.
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

/// `Self`.
pub fn is_self(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self"))
}

/// `Option<T>` (any type named `Option` with one type argument).
pub fn is_option(ty: &Type) -> bool {
    generic_args_of(ty, "Option").is_some_and(|types| types.count() == 1)
}

/// A byte string, which the worker and the client send as msgpack bin rather than as serde's
/// array of integers: `Vec<u8>`, `Box<[u8]>`, `Bytes` (any path ending in it: `bytes::Bytes`),
/// `[u8; N]`, or an `Option` of one. Runtime side: `multifrost::__private::BinValue`.
pub fn is_bin(ty: &Type) -> bool {
    match generic_args_of(ty, "Option")
        .map(Iterator::collect::<Vec<_>>)
        .as_deref()
    {
        Some([inner]) => is_byte_string(inner),
        Some(_) => false,
        None => is_byte_string(ty),
    }
}

fn is_byte_string(ty: &Type) -> bool {
    let only_arg = |name| match generic_args_of(ty, name).map(Iterator::collect::<Vec<_>>) {
        Some(args) if args.len() == 1 => Some(args[0]),
        _ => None,
    };
    match ungroup(ty) {
        Type::Array(array) => is_u8(&array.elem),
        Type::Path(path)
            if path
                .path
                .segments
                .last()
                .is_some_and(|last| last.ident == "Bytes" && last.arguments.is_none()) =>
        {
            true
        }
        Type::Path(_) => {
            only_arg("Vec").is_some_and(is_u8)
                || only_arg("Box").is_some_and(
                    |inner| matches!(ungroup(inner), Type::Slice(slice) if is_u8(&slice.elem)),
                )
        }
        _ => false,
    }
}

fn is_u8(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Path(path) if path.qself.is_none() && path.path.is_ident("u8"))
}

/// The type arguments of `ty` when it is a path whose last segment is `name<...>`.
pub fn generic_args_of<'a>(ty: &'a Type, name: &str) -> Option<impl Iterator<Item = &'a Type>> {
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

/// A type as a person would write it (`Box<Self>`, not `Box < Self >`).
pub fn type_text(ty: &Type) -> String {
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

#[cfg(test)]
mod tests {
    use super::is_bin;

    fn bin(ty: &str) -> bool {
        is_bin(&syn::parse_str(ty).expect("a type"))
    }

    #[test]
    fn byte_strings_are_recognised_by_name() {
        for ty in [
            "Vec<u8>",
            "std::vec::Vec<u8>",
            "Box<[u8]>",
            "Bytes",
            "bytes::Bytes",
            "[u8; 32]",
            "Option<Vec<u8>>",
            "Option<bytes::Bytes>",
        ] {
            assert!(bin(ty), "{ty}");
        }
    }

    #[test]
    fn other_types_are_not_byte_strings() {
        for ty in [
            "Vec<u16>",
            "Vec<Vec<u8>>",
            "Box<u8>",
            "[u16; 4]",
            "Option<String>",
            "Option<Option<Vec<u8>>>",
            "BytesMut",
            "String",
        ] {
            assert!(!bin(ty), "{ty}");
        }
    }
}
