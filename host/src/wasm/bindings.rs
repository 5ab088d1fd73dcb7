//! Host bindings generated from `wit/headwater-plugin.wit`. The checker world reuses the
//! transformer's shared interfaces, so one set of types and one host implementation serve both.

pub mod transformer {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transformer",
    });
}

pub mod checker {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "checker",
        with: {
            "headwater:plugin/types": super::transformer::headwater::plugin::types,
            "headwater:plugin/log": super::transformer::headwater::plugin::log,
            "headwater:plugin/metrics": super::transformer::headwater::plugin::metrics,
        },
    });
}

pub use transformer::headwater::plugin::{log, metrics, types};

/// A severity as users write it in `violations.<severity>`.
pub fn severity_name(s: types::Severity) -> &'static str {
    match s {
        types::Severity::Info => "info",
        types::Severity::Warning => "warning",
        types::Severity::Error => "error",
    }
}
