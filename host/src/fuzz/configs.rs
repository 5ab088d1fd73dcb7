//! Connector configs from a REST caller or a file: any text is parsed (JSON, flat JSON,
//! `.properties`) or refused with an error, and any values for the documented keys of every
//! connector class, converter and transform give a prepared connector or a list of issues.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;

use crate::api::allowed_env::AllowedEnv;
use crate::api::allowed_paths::AllowedPaths;
use crate::api::confine::Confine;
use crate::config::connector::{ConnectorConfig, parse_json, parse_properties};
use crate::runtime::prepare::{COMMON_KEYS, RunMode, SINK_KEYS, SOURCE_KEYS, prepare};

/// Values that reach the corners of key parsers: numbers out of range, negative, empty,
/// placeholders, lists, regexes, paths.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        super::tricky_string(),
        any::<i64>().prop_map(|n| n.to_string()),
        Just(String::new()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("true".to_owned()),
        Just("all".to_owned()),
        Just("a,b,,c".to_owned()),
        Just("(".to_owned()),
        Just("${env:HEADWATER_FUZZ_UNSET}".to_owned()),
        Just("${param:x}".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("topic-*".to_owned()),
    ]
}

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn any_config_text_parses_or_is_refused(text in super::tricky_string(), json in super::json_value()) {
        let _ = parse_json(&text, "fuzz", Some("fuzz"));
        let _ = parse_json(&json.to_string(), "fuzz", Some("fuzz"));
        let _ = parse_json(&serde_json::json!({"name": "n", "config": json}).to_string(), "fuzz", None);
        let _ = parse_properties(&text, "fuzz", Some("fuzz"));
    }

    #[test]
    fn any_values_of_the_documented_keys_prepare_or_give_issues(
        class in 0usize..64,
        transform in 0usize..64,
        values in prop::collection::vec(value(), 64),
        picks in prop::collection::vec(any::<bool>(), 64),
    ) {
        let registry = crate::registry();
        let plugins = registry.plugins();
        let plugin = &plugins[class % plugins.len()];
        let transforms = crate::transforms::plugins();
        let smt = &transforms[transform % transforms.len()];
        let smt_class = if smt.has_variants {
            format!("{}$Value", smt.class)
        } else {
            smt.class.to_owned()
        };
        let mut config = BTreeMap::from([
            ("name".to_owned(), "fuzz".to_owned()),
            ("connector.class".to_owned(), plugin.class().to_owned()),
            ("transforms".to_owned(), "t".to_owned()),
            ("transforms.t.type".to_owned(), smt_class),
        ]);
        let transform_keys = smt.keys;
        let keys = plugin
            .keys()
            .iter()
            .chain(COMMON_KEYS)
            .chain(SOURCE_KEYS)
            .chain(SINK_KEYS)
            .map(|k| k.name.to_owned())
            .chain(transform_keys.iter().map(|k| format!("transforms.t.{}", k.name)));
        for (i, key) in keys.enumerate() {
            if key == "name" || key == "connector.class" || !picks[i % picks.len()] {
                continue;
            }
            config.insert(key, values[i % values.len()].clone());
        }
        let dir = tempfile::tempdir().unwrap();
        // Confined: whatever paths the values name, nothing is created outside the directory.
        let allowed = Arc::new(AllowedPaths::new(&[dir.path().join("var")]).unwrap());
        let env = AllowedEnv::default();
        let _ = prepare(
            &registry,
            &ConnectorConfig { name: "fuzz".to_owned(), config },
            &dir.path().join("var"),
            None,
            &RunMode::default(),
            Some(Confine { paths: &allowed, env: &env }),
        );
    }
}
