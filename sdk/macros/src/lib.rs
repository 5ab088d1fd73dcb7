//! The `#[transform]` and `#[check]` attributes of `headwater-sdk`: they turn one function into
//! a component exporting Headwater's plugin contract. See the `headwater-sdk` docs.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, MetaNameValue, Token, Type};

/// The plugin contract, compiled into every plugin (the host checks its version).
const WIT: &str = include_str!("../../../wit/headwater-plugin.wit");

/// Makes a feature transform of `fn(&Record, &mut Emitter [, &State]) -> Result<()>`.
#[proc_macro_attribute]
pub fn transform(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Transform, args, item)
}

/// Makes a data-quality check of `fn(&Record [, &State]) -> Result<Vec<Violation>>`, or of
/// `fn(&[Record] [, &State]) -> Result<Vec<(u32, Violation)>>` for rules over a whole batch.
#[proc_macro_attribute]
pub fn check(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Check, args, item)
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Transform,
    Check,
}

struct Args {
    params: Option<Expr>,
    init: Option<Expr>,
    description: Option<String>,
    /// `stateful = true`: the plugin uses `headwater_sdk::state` (world stateful-transformer).
    stateful: bool,
}

fn parse_args(args: TokenStream) -> syn::Result<Args> {
    let parsed = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse(args)?;
    let mut out = Args {
        params: None,
        init: None,
        description: None,
        stateful: false,
    };
    for nv in parsed {
        let name = nv
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match name.as_str() {
            "params" => out.params = Some(nv.value),
            "init" => out.init = Some(nv.value),
            "description" => match nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => out.description = Some(s.value()),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "description must be a string",
                    ));
                }
            },
            "stateful" => match nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) => out.stateful = b.value,
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "stateful must be true or false",
                    ));
                }
            },
            _ => {
                return Err(syn::Error::new_spanned(
                    nv.path,
                    "expected `params = ...`, `init = ...`, `description = \"...\"` or \
                     `stateful = true`",
                ));
            }
        }
    }
    Ok(out)
}

fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let result = parse_args(args).and_then(|args| {
        let func: ItemFn = syn::parse(item)?;
        generate(kind, &args, &func)
    });
    match result {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// The type `S` of a trailing `&S` argument, if the function takes one beyond the fixed ones.
fn state_type(kind: Kind, func: &ItemFn) -> syn::Result<Option<Type>> {
    let fixed = match kind {
        Kind::Transform => 2,
        Kind::Check => 1,
    };
    let inputs: Vec<&FnArg> = func.sig.inputs.iter().collect();
    match inputs.len() {
        n if n == fixed => Ok(None),
        n if n == fixed + 1 => match inputs[fixed] {
            FnArg::Typed(pat) => match &*pat.ty {
                Type::Reference(r) => Ok(Some((*r.elem).clone())),
                other => Err(syn::Error::new_spanned(
                    other,
                    "the state argument must be `&State`",
                )),
            },
            FnArg::Receiver(r) => Err(syn::Error::new_spanned(r, "plugins are free functions")),
        },
        _ => Err(syn::Error::new_spanned(
            &func.sig,
            match kind {
                Kind::Transform => {
                    "expected fn(&Record, &mut Emitter) or fn(&Record, &mut Emitter, &State)"
                }
                Kind::Check => "expected fn(&Record) or fn(&[Record]), with an optional &State",
            },
        )),
    }
}

/// True when the first argument is a slice (`&[Record]`).
fn takes_batch(func: &ItemFn) -> bool {
    matches!(
        func.sig.inputs.first(),
        Some(FnArg::Typed(pat)) if matches!(&*pat.ty, Type::Reference(r) if matches!(&*r.elem, Type::Slice(_)))
    )
}

fn generate(kind: Kind, args: &Args, func: &ItemFn) -> syn::Result<Tokens> {
    let name = &func.sig.ident;
    let sdk = quote!(::headwater_sdk);
    let state = state_type(kind, func)?;
    let params = args.params.clone().map_or(quote!(&[]), |p| quote!(#p));
    let description = match &args.description {
        Some(d) => quote!(#d),
        None => quote!(env!("CARGO_PKG_DESCRIPTION")),
    };
    // The state: what `init` builds, the checked Config, or nothing.
    let (state_ty, init_body, call_state) = match (&state, &args.init) {
        (Some(ty), Some(init)) => (quote!(#ty), quote!((#init)(config)), quote!(, state)),
        (Some(ty), None) => (quote!(#ty), quote!(Ok(config)), quote!(, state)),
        (None, Some(init)) => {
            return Err(syn::Error::new_spanned(
                init,
                "with `init`, the function takes the state it builds as its last argument (`&State`)",
            ));
        }
        (None, None) => (
            quote!(()),
            quote!({
                let _ = config;
                Ok(())
            }),
            quote!(),
        ),
    };
    // A check over `&[Record]` sees the whole batch (uniqueness, `mostly` thresholds) and
    // returns `(index, violation)` pairs; one over `&Record` is looped by the SDK.
    let check_call = if takes_batch(func) {
        quote! {
            super::#name(records #call_state).map(|violations| #sdk::rt::CheckOut {
                violations,
                errors: Vec::new(),
            })
        }
    } else {
        quote!(#sdk::rt::each_record(records, |record| super::#name(record #call_state)))
    };
    let module = format_ident!("__headwater_plugin_{}", name);
    if args.stateful && kind == Kind::Check {
        return Err(syn::Error::new_spanned(
            &func.sig,
            "checks are stateless; `stateful = true` is for transforms",
        ));
    }
    // A stateful transform imports the host's `state` interface and hands it to the SDK.
    let (state_hooks, state_host) = if args.stateful {
        (
            quote! {
                fn state_get(key: &[u8]) -> Option<Vec<u8>> { headwater::plugin::state::get(key) }
                fn state_put(key: &[u8], value: &[u8]) { headwater::plugin::state::put(key, value) }
                fn state_delete(key: &[u8]) { headwater::plugin::state::delete(key) }
                fn state_scan(prefix: &[u8], start: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
                    headwater::plugin::state::scan(prefix, start, limit)
                }
                fn state_watermark() -> i64 { headwater::plugin::state::watermark() }
            },
            quote!(Some(#sdk::rt::StateHost {
                get: state_get,
                put: state_put,
                delete: state_delete,
                scan: state_scan,
                watermark: state_watermark,
            })),
        )
    } else {
        (quote!(), quote!(None))
    };
    let (world, trait_impl, export_impl) = match kind {
        Kind::Transform => (
            if args.stateful {
                "stateful-transformer"
            } else {
                "transformer"
            },
            quote! {
                impl #sdk::rt::TransformPlugin for Plugin {
                    type State = #state_ty;
                    const INFO: #sdk::rt::Info = INFO;
                    fn init(config: #sdk::Config) -> #sdk::Result<Self::State> { #init_body }
                    fn transform(
                        state: &Self::State,
                        record: &#sdk::Record<'_>,
                        out: &mut #sdk::Emitter,
                    ) -> #sdk::Result<()> {
                        let _ = state;
                        super::#name(record, out #call_state)
                    }
                }
            },
            quote! {
                impl exports::headwater::plugin::transform::Guest for Plugin {
                    fn process(input: types::Batch) -> Result<types::OutBatch, types::PluginError> {
                        let out = #sdk::rt::process::<Plugin>(&input.arena, &input.spans, &input.timestamps)
                            .map_err(types::PluginError::Fatal)?;
                        let (arena, spans, timestamps, sources) = out.emitted.into_parts();
                        Ok(types::OutBatch {
                            arena,
                            spans,
                            timestamps,
                            sources,
                            errors: record_errors(out.errors),
                        })
                    }
                }
            },
        ),
        Kind::Check => (
            "checker",
            quote! {
                impl #sdk::rt::CheckPlugin for Plugin {
                    type State = #state_ty;
                    const INFO: #sdk::rt::Info = INFO;
                    fn init(config: #sdk::Config) -> #sdk::Result<Self::State> { #init_body }
                    fn check(
                        state: &Self::State,
                        records: &[#sdk::Record<'_>],
                    ) -> #sdk::Result<#sdk::rt::CheckOut> {
                        let _ = state;
                        #check_call
                    }
                }
            },
            quote! {
                impl exports::headwater::plugin::quality::Guest for Plugin {
                    fn check(input: types::Batch) -> Result<types::Verdicts, types::PluginError> {
                        let out = #sdk::rt::check::<Plugin>(&input.arena, &input.spans, &input.timestamps)
                            .map_err(types::PluginError::Fatal)?;
                        let violations = out.violations.into_iter().map(|(index, v)| types::Violation {
                            index,
                            rule: v.rule,
                            severity: match v.severity {
                                #sdk::Severity::Info => types::Severity::Info,
                                #sdk::Severity::Warning => types::Severity::Warning,
                                #sdk::Severity::Error => types::Severity::Error,
                            },
                            message: v.message,
                        }).collect();
                        Ok(types::Verdicts { violations, errors: record_errors(out.errors) })
                    }
                }
            },
        ),
    };
    let plugin_trait = match kind {
        Kind::Transform => quote!(#sdk::rt::TransformPlugin),
        Kind::Check => quote!(#sdk::rt::CheckPlugin),
    };
    Ok(quote! {
        #func

        #[doc(hidden)]
        #[allow(clippy::all, unused, unsafe_code, missing_docs)]
        mod #module {
            // The attribute's arguments (params, init, the state type) name the plugin's items.
            use super::*;

            struct Plugin;

            const INFO: #sdk::rt::Info = #sdk::rt::Info {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                description: #description,
                params: #params,
            };

            #trait_impl

            // The component glue exists only in the wasm build: native builds (unit tests of
            // the plugin's functions) have no host to link against.
            #[cfg(target_arch = "wasm32")]
            mod glue {
                use super::*;

                #sdk::__private::wit_bindgen::generate!({
                    inline: #WIT,
                    world: #world,
                    runtime_path: "::headwater_sdk::__private::wit_bindgen::rt",
                });

                use headwater::plugin::types;

                fn host_log(level: #sdk::log::Level, message: &str) {
                    use headwater::plugin::log::{log, Level};
                    let level = match level {
                        #sdk::log::Level::Trace => Level::Trace,
                        #sdk::log::Level::Debug => Level::Debug,
                        #sdk::log::Level::Info => Level::Info,
                        #sdk::log::Level::Warn => Level::Warn,
                        #sdk::log::Level::Error => Level::Error,
                    };
                    log(level, message);
                }

                fn host_metrics(counters: &[#sdk::rt::Sample], gauges: &[#sdk::rt::Sample]) {
                    use headwater::plugin::metrics::{record_batch, Point};
                    let points = |series: &[#sdk::rt::Sample]| -> Vec<Point> {
                        series.iter().map(|((name, labels), value)| Point {
                            name: name.clone(),
                            value: *value,
                            labels: labels.clone(),
                        }).collect()
                    };
                    record_batch(&points(counters), &points(gauges));
                }

                #state_hooks

                fn record_errors(errors: Vec<(u32, String)>) -> Vec<types::RecordError> {
                    errors.into_iter().map(|(index, message)| types::RecordError { index, message }).collect()
                }

                impl exports::headwater::plugin::lifecycle::Guest for Plugin {
                    fn describe() -> types::PluginInfo {
                        let info = <Plugin as #plugin_trait>::INFO;
                        types::PluginInfo {
                            name: info.name.into(),
                            version: info.version.into(),
                            description: info.description.into(),
                            params: info.params.iter().map(|p| types::Param {
                                name: p.name.into(),
                                type_: match p.kind {
                                    #sdk::ParamType::String => types::ParamType::String,
                                    #sdk::ParamType::Integer => types::ParamType::Integer,
                                    #sdk::ParamType::Float => types::ParamType::Float,
                                    #sdk::ParamType::Boolean => types::ParamType::Boolean,
                                    #sdk::ParamType::List => types::ParamType::List,
                                },
                                description: p.description.into(),
                                required: p.default.is_none(),
                                default: p.default.map(Into::into),
                            }).collect(),
                        }
                    }

                    fn init(config: Vec<(String, String)>) -> Result<(), types::PluginError> {
                        #sdk::rt::set_host(#sdk::rt::Host {
                            log: host_log,
                            metrics: host_metrics,
                            state: #state_host,
                        });
                        #sdk::rt::init(INFO.params, config, <Plugin as #plugin_trait>::init)
                            .map_err(types::PluginError::Config)
                    }
                }

                #export_impl

                export!(Plugin with_types_in self);
            }
        }
    })
}
