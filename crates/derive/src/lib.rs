//! # flux-derive
//!
//! `#[derive(Layer)]` and `#[derive(Traverse)]` for flux-rs, Flux's `@layer` in Rust. Use them
//! through `flux::prelude::*` or `flux_layers`, which re-export both next to the traits of the
//! same names (as serde does with `Serialize`).
//!
//! `#[derive(Traverse)]` declares a struct's parts to the one structural traversal that
//! `params`, `save_state`, `reset`, dtype conversion and `deepcopy` use:
//!
//! - a `Var` field is a trainable parameter, visited under the field's name (`weight`);
//! - a field whose type is a layer (or anything that implements `Traverse`), a `Vec`, an
//!   `Option` or a `Box` of one, is a child, its parts visited under `field.inner_name`
//!   (`blocks.2.weight` for the third item of a `Vec`, `head.bias` for an `Option`'s content);
//! - `#[layer(buffer)]` marks a `Var` that is state, not a trainable parameter (saved, converted,
//!   never trained: BatchNorm's running statistics);
//! - `#[layer(skip)]` leaves a field out (it is cloned by `deepcopy`);
//! - `#[layer(rename = "Wi")]` visits a field under another name.
//!
//! Any other field is a compile error pointing at the field. It also derives `DeepCopy`: a copy
//! with new parameters of the same values.
//!
//! `#[derive(Layer)]` does all of that and implements `Layer` with the struct's inherent
//! `fn forward(&self, x: &Var) -> Var` as its forward. Struct attributes:
//!
//! - `#[layer(try_forward)]`: the inherent `fn try_forward(&self, x: &Var) -> Result<Var,
//!   LayerError>` is the forward instead (a layer that reports bad input as an error);
//! - `#[layer(fmt)]`: the inherent `fn fmt_layer(&self, f: &mut fmt::Formatter) -> fmt::Result`
//!   prints the layer; without it a layer prints as `Name(child, child)`, like Flux;
//! - `#[layer(bound = "T: Layer + 'static")]`: replaces the bounds put on each type parameter
//!   (by default `Layer + 'static` for `derive(Layer)`, none for `derive(Traverse)`);
//! - `#[layer(torch)]`: the struct implements `flux_layers::TorchModule` (its PyTorch names and
//!   layouts), and its `visit` declares it first with `Walker::torch`, so `load_torch_state` and
//!   `save_torch_state` find it (both derives).
//!
//! `Display` is implemented through the layer's printing.

#![forbid(unsafe_code)]

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_macro_input, Data, DeriveInput, Fields, GenericArgument, Ident, Index, Member, PathArguments, Type, WherePredicate};

/// Derives `Traverse`, `DeepCopy`, `Layer` and `Display` for a struct whose inherent
/// `forward(&self, &Var) -> Var` is its forward. See the crate docs.
#[proc_macro_derive(Layer, attributes(layer))]
pub fn derive_layer(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, true).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Derives `Traverse` and `DeepCopy` only: for containers of parameters that are not layers
/// (a recurrent cell, an optimiser's state). See the crate docs.
#[proc_macro_derive(Traverse, attributes(layer))]
pub fn derive_traverse(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, false).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// What a field is to the traversal.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Child,
    Buffer,
    Skip,
}

struct Field {
    member: Member,
    name: String,
    ty: Type,
    role: Role,
}

#[derive(Default)]
struct StructOptions {
    try_forward: bool,
    fmt: bool,
    torch: bool,
    bound: Option<Vec<WherePredicate>>,
}

fn struct_options(input: &DeriveInput) -> syn::Result<StructOptions> {
    let mut o = StructOptions::default();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("layer")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("try_forward") {
                o.try_forward = true;
            } else if meta.path.is_ident("fmt") {
                o.fmt = true;
            } else if meta.path.is_ident("torch") {
                o.torch = true;
            } else if meta.path.is_ident("bound") {
                let s: syn::LitStr = meta.value()?.parse()?;
                let preds = s.parse_with(syn::punctuated::Punctuated::<WherePredicate, syn::Token![,]>::parse_terminated)?;
                o.bound = Some(preds.into_iter().collect());
            } else {
                return Err(meta.error("expected `try_forward`, `fmt`, `torch` or `bound = \"...\"` in #[layer(...)] on a struct"));
            }
            Ok(())
        })?;
    }
    Ok(o)
}

/// The field's role and the name it is visited under (`#[layer(rename = "Wi")]`).
fn field_attrs(f: &syn::Field, mut name: String) -> syn::Result<(Role, String)> {
    let mut role = Role::Child;
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("layer")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                role = Role::Skip;
            } else if meta.path.is_ident("buffer") {
                role = Role::Buffer;
            } else if meta.path.is_ident("rename") {
                name = meta.value()?.parse::<syn::LitStr>()?.value();
            } else {
                return Err(meta.error("expected `skip`, `buffer` or `rename = \"...\"` in #[layer(...)] on a field"));
            }
            Ok(())
        })?;
    }
    Ok((role, name))
}

fn fields(input: &DeriveInput) -> syn::Result<(Vec<Field>, &Fields)> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(input.ident.span(), "#[derive(Layer)] and #[derive(Traverse)] work on structs only"));
    };
    let mut out = Vec::new();
    for (i, f) in data.fields.iter().enumerate() {
        let (member, name) = match &f.ident {
            Some(id) => (Member::Named(id.clone()), id.to_string()),
            None => (Member::Unnamed(Index { index: i as u32, span: f.span() }), i.to_string()),
        };
        let (role, name) = field_attrs(f, name)?;
        out.push(Field { member, name, ty: f.ty.clone(), role });
    }
    Ok((out, &data.fields))
}

/// Where the traits live: `flux_layers`, or `flux::layers` for a crate that only uses the facade.
fn root() -> TokenStream {
    use proc_macro_crate::{crate_name, FoundCrate};
    match crate_name("flux-layers") {
        Ok(FoundCrate::Itself) => quote!(::flux_layers),
        Ok(FoundCrate::Name(n)) => {
            let n = Ident::new(&n, Span::call_site());
            quote!(::#n)
        }
        Err(_) => match crate_name("flux") {
            Ok(FoundCrate::Name(n)) => {
                let n = Ident::new(&n, Span::call_site());
                quote!(::#n::layers)
            }
            _ => quote!(::flux_layers),
        },
    }
}

/// The generic argument of `Outer<T>` when `ty` is that (by its last path segment).
fn wrapped<'a>(ty: &'a Type, outer: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != outer {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &seg.arguments else { return None };
    args.args.iter().find_map(|a| if let GenericArgument::Type(t) = a { Some(t) } else { None })
}

fn is_var(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Var"))
}

fn expand(input: &DeriveInput, layer: bool) -> syn::Result<TokenStream> {
    let opts = struct_options(input)?;
    let (fields, shape) = fields(input)?;
    let root = root();
    let name = &input.ident;
    let name_str = name.to_string();

    // Bounds: by default each type parameter of a derived layer is a layer ('static so that
    // `deepcopy` can box it); field types get exactly the bounds their use needs.
    let mut generics = input.generics.clone();
    {
        let wc = generics.make_where_clause();
        match &opts.bound {
            Some(preds) => wc.predicates.extend(preds.iter().cloned()),
            None if layer => {
                for tp in input.generics.type_params() {
                    let id = &tp.ident;
                    wc.predicates.push(syn::parse_quote!(#id: __flux::Layer + 'static));
                }
            }
            None => {}
        }
    }
    let (impl_g, ty_g, where_base) = generics.split_for_impl();
    let where_preds: Vec<TokenStream> = where_base.map(|w| w.predicates.iter().map(|p| p.to_token_stream()).collect()).unwrap_or_default();

    // visit: one line per field, spanned at the field's type so that a field that is not a
    // layer or a Var is reported there.
    let torch_decl = if opts.torch { quote!(__w.torch(self);) } else { quote!() };
    let visits = fields.iter().filter(|f| f.role != Role::Skip).map(|f| {
        let (m, n, ty) = (&f.member, &f.name, &f.ty);
        match f.role {
            Role::Buffer => quote_spanned!(ty.span()=> __w.buffer(#n, __flux::as_buffer(&self.#m));),
            _ if wrapped(ty, "Box").is_some() => quote_spanned!(ty.span()=> __w.child(#n, &*self.#m);),
            _ => quote_spanned!(ty.span()=> __w.child(#n, &self.#m);),
        }
    });

    let copies = fields.iter().map(|f| {
        let (m, ty) = (&f.member, &f.ty);
        let value = match (f.role, wrapped(ty, "Box")) {
            (Role::Skip, _) => quote_spanned!(ty.span()=> ::core::clone::Clone::clone(&self.#m)),
            (_, Some(Type::TraitObject(_))) => quote_spanned!(ty.span()=> __flux::DeepCopy::deepcopy(&self.#m)),
            (_, Some(_)) => quote_spanned!(ty.span()=> ::std::boxed::Box::new(__flux::DeepCopy::deepcopy(&*self.#m))),
            _ => quote_spanned!(ty.span()=> __flux::DeepCopy::deepcopy(&self.#m)),
        };
        quote!(#m: #value)
    });
    let construct = match shape {
        Fields::Unit => quote!(#name),
        _ => quote!(#name { #(#copies),* }),
    };

    // Skipped fields are cloned by `deepcopy`; the others must be traversable and copyable,
    // which the generated calls check field by field (at the field's span).
    let skipped: Vec<&Type> = fields.iter().filter(|f| f.role == Role::Skip).map(|f| &f.ty).collect();
    // A field whose type names a type parameter needs its bounds spelled out.
    let params: Vec<String> = input.generics.type_params().map(|t| t.ident.to_string()).collect();
    let generic: Vec<&Type> = fields.iter().filter(|f| f.role != Role::Skip && mentions(&f.ty, &params)).map(|f| &f.ty).collect();
    let traverse_bounds: Vec<TokenStream> = skipped
        .iter()
        .map(|ty| quote!(#ty: ::core::marker::Send + ::core::marker::Sync))
        .chain(generic.iter().map(|ty| quote!(#ty: __flux::Traverse)))
        .collect();
    let copy_bounds: Vec<TokenStream> =
        skipped.iter().map(|ty| quote!(#ty: ::core::clone::Clone)).chain(generic.iter().map(|ty| quote!(#ty: __flux::DeepCopy))).collect();

    let mut out = quote! {
        #[automatically_derived]
        #[allow(private_bounds)]
        impl #impl_g __flux::Traverse for #name #ty_g where #(#where_preds,)* #(#traverse_bounds,)* {
            fn visit(&self, __w: &mut __flux::Walker<'_>) {
                #torch_decl
                #(#visits)*
            }
        }
        #[automatically_derived]
        #[allow(private_bounds)]
        impl #impl_g __flux::DeepCopy for #name #ty_g where #(#where_preds,)* #(#copy_bounds,)* {
            fn deepcopy(&self) -> Self {
                #construct
            }
        }
    };

    if layer {
        let turbo = ty_g.as_turbofish();
        let forward =
            if opts.try_forward { quote!(#name #turbo::try_forward(self, x)) } else { quote!(::core::result::Result::Ok(#name #turbo::forward(self, x))) };
        let fmt = if opts.fmt { quote!(#name #turbo::fmt_layer(self, f)) } else { default_fmt(&name_str, &fields) };
        let guard = format_ident!("DeriveLayerOf{}NeedsAnInherentMethod", name);
        out.extend(quote! {
            // Makes a missing inherent `forward` (or `try_forward`, `fmt_layer` when asked for) a
            // compile error: without it the call below would resolve to the trait's own method.
            #[allow(dead_code, non_camel_case_types)]
            trait #guard {
                fn forward(&self) {}
                fn try_forward(&self) {}
                fn fmt_layer(&self) {}
            }
            impl<T: ?Sized> #guard for T {}

            #[automatically_derived]
            #[allow(private_bounds)]
            impl #impl_g __flux::Layer for #name #ty_g where #(#where_preds,)* #(#traverse_bounds,)* #(#copy_bounds,)* {
                fn try_forward(&self, x: &__flux::Var) -> ::core::result::Result<__flux::Var, __flux::LayerError> {
                    #forward
                }
                fn fmt_layer(&self, f: &mut __flux::fmt::Formatter<'_>) -> __flux::fmt::Result {
                    #fmt
                }
                fn deepcopy_layer(&self) -> ::core::option::Option<::std::boxed::Box<dyn __flux::Layer>> {
                    ::core::option::Option::Some(::std::boxed::Box::new(__flux::DeepCopy::deepcopy(self)))
                }
            }
            #[automatically_derived]
            #[allow(private_bounds)]
            impl #impl_g __flux::fmt::Display for #name #ty_g where #(#where_preds,)* #(#traverse_bounds,)* #(#copy_bounds,)* {
                fn fmt(&self, f: &mut __flux::fmt::Formatter<'_>) -> __flux::fmt::Result {
                    __flux::Layer::fmt_layer(self, f)
                }
            }
        });
    }

    Ok(quote! {
        #[allow(non_upper_case_globals, unused_qualifications)]
        const _: () = {
            use #root::__derive as __flux;
            #out
        };
    })
}

/// True when `ty` names one of the type parameters `params`.
fn mentions(ty: &Type, params: &[String]) -> bool {
    fn walk(ts: TokenStream, params: &[String]) -> bool {
        ts.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => params.iter().any(|p| i == p),
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), params),
            _ => false,
        })
    }
    !params.is_empty() && walk(ty.to_token_stream(), params)
}

/// `Name(child, child)`: layers as they print, a `Vec` as `[a, b]`, an empty `Option` as
/// `nothing`, a `Var` as Julia summarises an array (`5×10 Matrix{Float32}`). Buffers and skipped
/// fields are not shown.
fn default_fmt(name: &str, fields: &[Field]) -> TokenStream {
    let parts = fields.iter().filter(|f| f.role == Role::Child).enumerate().map(|(i, f)| {
        let m = &f.member;
        let sep = if i > 0 { quote!(f.write_str(", ")?;) } else { quote!() };
        let body = if wrapped(&f.ty, "Vec").is_some() {
            quote! {
                f.write_str("[")?;
                for (__i, __item) in self.#m.iter().enumerate() {
                    if __i > 0 { f.write_str(", ")?; }
                    __flux::FmtChild::fmt_child(__item, f)?;
                }
                f.write_str("]")?;
            }
        } else if wrapped(&f.ty, "Option").is_some() {
            quote! {
                match &self.#m {
                    ::core::option::Option::Some(__c) => __flux::FmtChild::fmt_child(__c, f)?,
                    ::core::option::Option::None => f.write_str("nothing")?,
                }
            }
        } else if wrapped(&f.ty, "Box").is_some() {
            quote!(__flux::FmtChild::fmt_child(&*self.#m, f)?;)
        } else if is_var(&f.ty) {
            quote!(__flux::fmt_var(&self.#m, f)?;)
        } else {
            quote!(__flux::FmtChild::fmt_child(&self.#m, f)?;)
        };
        quote!(#sep #body)
    });
    quote! {
        f.write_str(#name)?;
        f.write_str("(")?;
        #(#parts)*
        f.write_str(")")
    }
}
