//! What a connector config from a REST caller is confined to: the files it may name and the
//! environment variables its `${env:...}` placeholders may read. Configs in `connectors.d/`, and
//! those `headwater validate` and `run --once` are given, are the operator's own and carry none.

use std::sync::Arc;

use super::allowed_env::AllowedEnv;
use super::allowed_paths::AllowedPaths;

/// The limits of one confined config.
#[derive(Debug, Clone, Copy)]
pub struct Confine<'a> {
    /// Where its files may be (`[files] allowed_paths`).
    pub paths: &'a Arc<AllowedPaths>,
    /// Which variables it may read (`[providers] allowed_env`).
    pub env: &'a AllowedEnv,
}
