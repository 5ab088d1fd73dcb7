//! `org.apache.kafka.connect.transforms.RegexRouter`: renames the topic of records whose topic
//! matches `regex` entirely, to `replacement` with `$1`-style group references.

use regex::Regex;

use super::util::Invalid;
use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::Record;
use crate::api::transform::{Outcome, Transform, TransformError};

use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.RegexRouter",
    has_variants: false,
    keys: &[REGEX, REPLACEMENT],
    build,
};

const REGEX: ConfigKey = ConfigKey::new(
    "regex",
    KeyType::String,
    "Regular expression to use for matching. It must match the whole topic name; records whose \
     topic does not match keep their topic.",
)
.required();

const REPLACEMENT: ConfigKey = ConfigKey::new(
    "replacement",
    KeyType::String,
    "Replacement string: the new topic name. `$1`, `$2`, ... and `${name}` refer to the groups \
     of `regex`; `\\$` is a literal dollar sign (Java `Matcher.replaceFirst` syntax).",
)
.required();

fn build(options: &mut Options, _: Part) -> Option<Box<dyn Transform>> {
    let regex = options.full_match_regex(&REGEX);
    let replacement = options.string(&REPLACEMENT)?;
    let regex = regex?;
    match rust_template(&replacement, regex.captures_len()) {
        Ok(template) => Some(Box::new(RegexRouter { regex, template })),
        Err(e) => {
            options.issue(
                REPLACEMENT.name,
                format!("invalid replacement {replacement:?}: {e}"),
            );
            None
        }
    }
}

#[derive(Debug)]
struct RegexRouter {
    regex: Regex,
    /// The replacement in the `regex` crate's `${1}` syntax.
    template: String,
}

impl Transform for RegexRouter {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        if let Some(captures) = self.regex.captures(&record.topic) {
            let mut topic = String::new();
            captures.expand(&self.template, &mut topic);
            record.topic = topic;
        }
        Ok(Outcome::Keep)
    }
}

/// Converts a Java replacement string to the `regex` crate's template syntax. As in Java, a
/// group number takes as many digits as still name an existing group (`$10` is group 1 then
/// `0` when there are fewer than ten groups) and `\` quotes the next character.
pub(super) fn rust_template(java: &str, group_count: usize) -> Result<String, Invalid> {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(next) => out.push(next),
                None => return Err(Invalid("character to be escaped is missing".to_owned())),
            },
            '$' => {
                match chars.peek().copied() {
                    Some('{') => {
                        chars.next();
                        let name: String = chars.by_ref().take_while(|&n| n != '}').collect();
                        if name.is_empty() || !name.chars().all(|n| n.is_ascii_alphanumeric()) {
                            return Err(Invalid(format!(
                                "invalid named group reference ${{{name}}}"
                            )));
                        }
                        out.push_str(&format!("${{{name}}}"));
                    }
                    Some(d) if d.is_ascii_digit() => {
                        chars.next();
                        let mut group = d.to_digit(10).map_or(0, |g| g as usize);
                        if group >= group_count {
                            return Err(Invalid(format!("no group {group} in the regex")));
                        }
                        while let Some(next) = chars.peek().and_then(|n| n.to_digit(10)) {
                            let longer = group * 10 + next as usize;
                            if longer >= group_count {
                                break;
                            }
                            group = longer;
                            chars.next();
                        }
                        out.push_str(&format!("${{{group}}}"));
                    }
                    _ => return Err(Invalid(
                        "illegal group reference: `$` must be followed by a group number or {name}"
                            .to_owned(),
                    )),
                }
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::rust_template;

    #[test]
    fn java_group_references_become_braced() {
        assert_eq!(rust_template("$1abc", 2).as_deref(), Ok("${1}abc"));
        assert_eq!(rust_template("$10", 2).as_deref(), Ok("${1}0"));
        assert_eq!(rust_template("$10", 11).as_deref(), Ok("${10}"));
        assert_eq!(rust_template("a\\$b", 1).as_deref(), Ok("a$$b"));
        assert_eq!(rust_template("${x}-y", 2).as_deref(), Ok("${x}-y"));
        assert!(rust_template("$2", 2).is_err());
        assert!(rust_template("$x", 2).is_err());
    }
}
