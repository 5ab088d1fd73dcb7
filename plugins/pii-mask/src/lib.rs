//! Hides personal data before it reaches a feature store: configured fields are replaced by a
//! salted SHA-256 (joinable: the same input and salt give the same hash) or masked.
//!
//! ```text
//! transforms.pii.type=headwater.wasm.Transform
//! transforms.pii.module=plugins/target/wasm32-wasip2/release/pii_mask.wasm
//! transforms.pii.config.hash.fields=email,user.phone
//! transforms.pii.config.salt=${env:PII_SALT}
//! transforms.pii.config.mask.fields=card_number
//! transforms.pii.config.mask.keep.last=4
//! ```

use headwater_sdk::prelude::*;
use sha2::{Digest, Sha256};

const PARAMS: &[Param] = &[
    Param::optional(
        "hash.fields",
        ParamType::List,
        "",
        "Fields (dotted paths) replaced by hex SHA-256 of salt + value.",
    ),
    Param::optional(
        "salt",
        ParamType::String,
        "",
        "Secret prepended before hashing; set it, or hashes of guessable values can be reversed.",
    ),
    Param::optional(
        "mask.fields",
        ParamType::List,
        "",
        "Fields (dotted paths) whose text is masked.",
    ),
    Param::optional(
        "mask.char",
        ParamType::String,
        "*",
        "Character masked text is made of.",
    ),
    Param::optional(
        "mask.keep.last",
        ParamType::Integer,
        "0",
        "Trailing characters left visible (e.g. 4 for card numbers).",
    ),
];

struct Settings {
    hash: Vec<Vec<String>>,
    salt: String,
    mask: Vec<Vec<String>>,
    mask_char: char,
    keep_last: usize,
}

fn paths(config: &Config, name: &str) -> Vec<Vec<String>> {
    config
        .list(name)
        .into_iter()
        .map(|p| p.split('.').map(str::to_owned).collect())
        .collect()
}

fn settings(config: Config) -> Result<Settings> {
    let mut chars = config.string("mask.char").chars();
    let mask_char = match (chars.next(), chars.next()) {
        (Some(c), None) => c,
        _ => {
            return Err(Error::new(
                "parameter `mask.char` must be exactly one character",
            ));
        }
    };
    let keep_last = usize::try_from(config.integer("mask.keep.last")?)
        .map_err(|_| Error::new("parameter `mask.keep.last` must not be negative"))?;
    let s = Settings {
        hash: paths(&config, "hash.fields"),
        salt: config.string("salt").to_owned(),
        mask: paths(&config, "mask.fields"),
        mask_char,
        keep_last,
    };
    if s.hash.is_empty() && s.mask.is_empty() {
        return Err(Error::new(
            "set `hash.fields` or `mask.fields`: there is nothing to hide",
        ));
    }
    if !s.hash.is_empty() && s.salt.is_empty() {
        log::warn(
            "pii-mask: `salt` is empty; hashes of guessable values (emails, phones) can be reversed",
        );
    }
    Ok(s)
}

fn field_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter()
        .try_fold(value, |at, part| at.get_mut(part.as_str()))
}

/// The text form a hash or mask works on: strings as they are, other scalars as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn hash(salt: &str, text: &str) -> String {
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(text)
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn mask(text: &str, with: char, keep_last: usize) -> String {
    let n = text.chars().count();
    let hidden = n.saturating_sub(keep_last);
    text.chars()
        .enumerate()
        .map(|(i, c)| if i < hidden { with } else { c })
        .collect()
}

#[transform(params = PARAMS, init = settings)]
fn pii_mask(rec: &Record, out: &mut Emitter, s: &Settings) -> Result<()> {
    let mut value = rec.json()?.clone();
    let mut changed = false;
    for path in &s.hash {
        if let Some(v) = field_mut(&mut value, path).filter(|v| !v.is_null()) {
            *v = Value::String(hash(&s.salt, &text(v)));
            changed = true;
        }
    }
    for path in &s.mask {
        if let Some(v) = field_mut(&mut value, path).filter(|v| !v.is_null()) {
            *v = Value::String(mask(&text(v), s.mask_char, s.keep_last));
            changed = true;
        }
    }
    if changed {
        metrics::counter("pii_fields_hidden", 1.0, &[]);
        out.emit(rec.output().value_json(&value));
    } else {
        out.forward(rec);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_sha256() {
        // printf 'pepperalice@example.com' | sha256sum
        assert_eq!(
            hash("pepper", "alice@example.com"),
            "8b8d9adc4875c0dca816e3e17b7ac87b45e40945b731fa02e3b42bf101589e21"
        );
        assert_ne!(hash("pepper", "a"), hash("salt", "a"));
    }

    #[test]
    fn masks_keep_the_tail() {
        assert_eq!(mask("4111111111111111", '*', 4), "************1111");
        assert_eq!(mask("ab", '#', 4), "ab");
    }
}
