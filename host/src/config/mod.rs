//! Connector configs as users write them: Kafka Connect JSON (or a flat map), `.properties`,
//! and the `${env:..}` / `${file:..}` config providers.
pub mod connector;
pub mod providers;
