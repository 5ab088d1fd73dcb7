//! The set of connector classes a runtime knows. The core gets it from `lib.rs`, which builds it
//! from `connectors::registry()`; the core itself names no connector.

use std::sync::Arc;

use crate::api::connector::ConnectorPlugin;

#[derive(Clone, Default)]
pub struct Registry {
    plugins: Vec<Arc<dyn ConnectorPlugin>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.class_names()).finish()
    }
}

impl Registry {
    pub fn new(plugins: Vec<Arc<dyn ConnectorPlugin>>) -> Self {
        Self { plugins }
    }

    /// The plugin for a class name or alias; Kafka Connect also accepts the simple class name
    /// (`FileSource`) and the name without its `Connector` suffix.
    pub fn find(&self, class: &str) -> Option<&Arc<dyn ConnectorPlugin>> {
        let class = class.trim();
        self.plugins.iter().find(|p| {
            std::iter::once(p.class())
                .chain(p.aliases().iter().copied())
                .any(|name| {
                    let simple = name.rsplit('.').next().unwrap_or(name);
                    name == class
                        || simple == class
                        || simple.strip_suffix("Connector") == Some(class)
                })
        })
    }

    /// Every accepted full class name, sorted.
    pub fn class_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .plugins
            .iter()
            .flat_map(|p| std::iter::once(p.class()).chain(p.aliases().iter().copied()))
            .collect();
        names.sort_unstable();
        names
    }

    pub fn plugins(&self) -> &[Arc<dyn ConnectorPlugin>] {
        &self.plugins
    }
}
