//! Exports `headwater:plugin/lifecycle@0.2.0`, which the host must refuse with a clear error.

wit_bindgen::generate!({ world: "transformer" });

struct Plugin;

impl exports::headwater::plugin::lifecycle::Guest for Plugin {
    fn describe() -> String {
        "other-wit".into()
    }
}

export!(Plugin);
