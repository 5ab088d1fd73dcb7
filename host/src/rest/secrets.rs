//! Secrets in connector configs are never answered: a password-typed key (the connector's,
//! the common ones, a converter's) or a pass-through client setting named as Kafka names its
//! secrets (`*.password`, `*.sasl.jaas.config`, `*basic.auth.user.info`) is shown as
//! `[hidden]`. A `[hidden]` sent back in a PUT or PATCH keeps the stored value, so clients that
//! read a config, change a key and write it back keep working.

use std::collections::BTreeMap;

use super::error::ApiError;
use crate::api::options::{ConfigKey, KeyType};
use crate::api::registry::Registry;
use crate::runtime::prepare::{COMMON_KEYS, SINK_KEYS};

/// What a secret is answered as.
pub const HIDDEN: &str = "[hidden]";

/// `config` as REST answers it: secrets hidden. A value that only names a config provider
/// (`${env:DB_PASSWORD}`, `${file:...}`) is shown: it is a reference, not the secret.
pub fn shown(registry: &Registry, config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let class = config.get("connector.class").map(String::as_str);
    config
        .iter()
        .map(|(key, value)| {
            let hide = is_secret(registry, class, key) && !is_reference(value);
            (
                key.clone(),
                if hide {
                    HIDDEN.to_owned()
                } else {
                    value.clone()
                },
            )
        })
        .collect()
}

/// Puts the stored value back for each key `incoming` sends as `[hidden]`; a `[hidden]` with no
/// stored value to keep is refused, naming the key.
pub fn keep_stored(
    incoming: &mut BTreeMap<String, String>,
    stored: Option<&BTreeMap<String, String>>,
) -> Result<(), ApiError> {
    if let Some(stored) = stored {
        restore_hidden(incoming, stored);
    }
    match incoming.iter().find(|(_, value)| *value == HIDDEN) {
        Some((key, _)) => Err(ApiError::bad_request(format!(
            "{key} is {HIDDEN}, but the connector has no stored value for it to keep: send the \
             value itself"
        ))),
        None => Ok(()),
    }
}

/// Puts the stored value back for each key `incoming` sends as `[hidden]` that has one.
pub fn restore_hidden(incoming: &mut BTreeMap<String, String>, stored: &BTreeMap<String, String>) {
    for (key, value) in incoming.iter_mut() {
        if value == HIDDEN
            && let Some(kept) = stored.get(key)
        {
            value.clone_from(kept);
        }
    }
}

fn is_secret(registry: &Registry, class: Option<&str>, key: &str) -> bool {
    let password = |keys: &[ConfigKey], name: &str| {
        keys.iter()
            .any(|k| k.name == name && k.kind == KeyType::Password)
    };
    if password(COMMON_KEYS, key) || password(SINK_KEYS, key) {
        return true;
    }
    if let Some(plugin) = class.and_then(|c| registry.find(c))
        && password(plugin.keys(), key)
    {
        return true;
    }
    let converter_key = key
        .strip_prefix("key.converter.")
        .or_else(|| key.strip_prefix("value.converter."));
    if let Some(name) = converter_key
        && crate::converters::KEYS
            .iter()
            .any(|(_, keys)| password(keys, name))
    {
        return true;
    }
    // Kafka clients' and schema registry clients' secrets, passed through under
    // producer.override.*, consumer.override.*, *.converter.*.
    key.ends_with("password")
        || key.ends_with("sasl.jaas.config")
        || key.ends_with("basic.auth.user.info")
}

/// A value that is only a config provider reference.
fn is_reference(value: &str) -> bool {
    let value = value.trim();
    value.starts_with("${") && value.ends_with('}') && value[2..].find("${").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_client_secrets_are_hidden_but_references_shown() {
        let registry = crate::registry();
        let config: BTreeMap<String, String> = [
            (
                "connector.class",
                "io.debezium.connector.postgresql.PostgresConnector",
            ),
            ("database.password", "s3cret"),
            ("database.user", "app"),
            ("consumer.override.sasl.jaas.config", "org.Login required;"),
            ("value.converter.basic.auth.user.info", "u:p"),
            ("value.converter.bearer.auth.token", "t0ken"),
            ("producer.override.ssl.key.password", "k"),
            ("topic.prefix", "app"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let shown = shown(&registry, &config);
        for key in [
            "database.password",
            "consumer.override.sasl.jaas.config",
            "value.converter.basic.auth.user.info",
            "value.converter.bearer.auth.token",
            "producer.override.ssl.key.password",
        ] {
            assert_eq!(shown[key], HIDDEN, "{key}");
        }
        assert_eq!(shown["database.user"], "app");
        assert_eq!(shown["topic.prefix"], "app");
        let mut referenced = config.clone();
        referenced.insert("database.password".into(), "${env:DB_PASSWORD}".into());
        assert_eq!(
            super::shown(&registry, &referenced)["database.password"],
            "${env:DB_PASSWORD}"
        );
    }

    #[test]
    fn a_hidden_value_sent_back_keeps_the_stored_one() {
        let stored: BTreeMap<String, String> =
            [("database.password".to_owned(), "s3cret".to_owned())].into();
        let mut incoming: BTreeMap<String, String> =
            [("database.password".to_owned(), HIDDEN.to_owned())].into();
        keep_stored(&mut incoming, Some(&stored)).unwrap();
        assert_eq!(incoming["database.password"], "s3cret");
        let mut unknown: BTreeMap<String, String> =
            [("redis.password".to_owned(), HIDDEN.to_owned())].into();
        let error = keep_stored(&mut unknown, Some(&stored)).unwrap_err();
        assert!(format!("{error:?}").contains("redis.password"), "{error:?}");
    }
}
