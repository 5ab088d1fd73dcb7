//! Which environment variables `${env:NAME}` may read in a connector created over the REST API:
//! `[providers] allowed_env` in the worker config, none by default.
//!
//! The host's environment holds its own secrets (cloud credentials, the REST token, database
//! passwords). A REST caller who could write `${env:AWS_SECRET_ACCESS_KEY}` into a topic name or
//! a file path would read them back in the output. Configs in `connectors.d/` are the operator's
//! own and read any variable. (Kafka's `EnvVarConfigProvider` has the same idea in its
//! `allowlist.pattern`.)

/// The variable names a confined config may read: exact names, or prefixes ending in `*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedEnv {
    patterns: Vec<String>,
}

/// A variable a confined config may not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "environment variable {name} is not one a connector created over the REST API may read (allowed: {allowed}; [providers] allowed_env in the worker config), or define the connector in connectors.d/"
)]
pub struct EnvNotAllowed {
    pub name: String,
    allowed: String,
}

impl AllowedEnv {
    /// Names (`PGPASSWORD`) and prefixes (`HEADWATER_SECRET_*`).
    pub fn new(patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether `name` may be read.
    pub fn check(&self, name: &str) -> Result<(), EnvNotAllowed> {
        let matches = |pattern: &String| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        };
        if self.patterns.iter().any(matches) {
            Ok(())
        } else {
            Err(EnvNotAllowed {
                name: name.to_owned(),
                allowed: if self.patterns.is_empty() {
                    "none".to_owned()
                } else {
                    self.patterns.join(", ")
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes_are_allowed_and_nothing_else() {
        let allowed = AllowedEnv::new(["PGPASSWORD", "HW_SECRET_*"]);
        assert!(allowed.check("PGPASSWORD").is_ok());
        assert!(allowed.check("HW_SECRET_REDIS").is_ok());
        assert!(allowed.check("PGPASSWORD2").is_err());
        let refused = allowed.check("AWS_SECRET_ACCESS_KEY").unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains("AWS_SECRET_ACCESS_KEY")
                && message.contains("PGPASSWORD, HW_SECRET_*")
                && message.contains("[providers] allowed_env"),
            "{message}"
        );
        assert!(
            AllowedEnv::default()
                .check("PATH")
                .unwrap_err()
                .to_string()
                .contains("allowed: none")
        );
    }
}
