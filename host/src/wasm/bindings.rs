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

/// Only for its `state` import: a stateful transform's exports are the transformer's.
pub mod stateful {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "stateful-transformer",
        with: {
            "headwater:plugin/types": super::transformer::headwater::plugin::types,
            "headwater:plugin/log": super::transformer::headwater::plugin::log,
            "headwater:plugin/metrics": super::transformer::headwater::plugin::metrics,
            "headwater:plugin/lifecycle": super::transformer::exports::headwater::plugin::lifecycle,
            "headwater:plugin/transform": super::transformer::exports::headwater::plugin::transform,
        },
    });
}

pub use stateful::headwater::plugin::state;
pub use transformer::headwater::plugin::{log, metrics, types};

/// A severity as users write it in `violations.<severity>`.
pub fn severity_name(s: types::Severity) -> &'static str {
    match s {
        types::Severity::Info => "info",
        types::Severity::Warning => "warning",
        types::Severity::Error => "error",
    }
}
