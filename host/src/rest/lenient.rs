//! Request values read as leniently as Kafka Connect reads them, so that its clients work
//! unchanged (a Python client sends `includeTasks=True`).

use serde::{Deserialize, Deserializer};

/// A boolean as Java's `Boolean.valueOf` reads it (what Kafka Connect's JAX-RS resources use):
/// `true` in any case is true, anything else false.
pub fn java_boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(text.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Flags {
        #[serde(deserialize_with = "java_boolean")]
        on: bool,
    }

    fn read(value: &str) -> bool {
        serde_json::from_value::<Flags>(serde_json::json!({ "on": value }))
            .map(|f| f.on)
            .unwrap()
    }

    #[test]
    fn booleans_read_as_java_reads_them() {
        assert!(read("true") && read("True") && read("TRUE"));
        assert!(!read("false") && !read("False") && !read("yes") && !read("1") && !read(""));
    }
}
