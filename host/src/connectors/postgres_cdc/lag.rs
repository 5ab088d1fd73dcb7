//! The slot's lag in bytes: how much WAL lies between the server's position (a standby's replay
//! position) and what the sinks have made durable, measured every 5 s on a connection of its
//! own, so that it keeps growing while a paused or slow sink holds the stream back (the
//! stream's own loop waits then).
//!
//! The slot's `confirmed_flush_lsn` alone understates it: the slot may confirm a position
//! inside a transaction the server has not sent yet (a keepalive while it decodes a large
//! one), which is safe (the transaction is sent again whole after a restart) but says nothing
//! of that transaction once it waits unflushed in a sink. So the stream also tells where the
//! oldest change handed to the sinks and not yet durable starts ([`Pending`]), and the lag
//! runs from the lower of the two.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::Client;

use super::config::CdcConfig;
use crate::api::metrics::ConnectorMetrics;
use crate::connectors::postgres::client;

/// How often the lag is measured.
const INTERVAL: Duration = Duration::from_secs(5);
const POSITIONS: &str = "SELECT ((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
     ELSE pg_current_wal_lsn() END) - '0/0'::pg_lsn)::bigint, \
     (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint \
     FROM pg_replication_slots WHERE slot_name = $1";

/// Where the oldest change handed to the sinks and not yet durable starts in the WAL.
#[derive(Debug, Clone)]
pub struct Pending(Arc<AtomicU64>);

impl Default for Pending {
    fn default() -> Self {
        Self(Arc::new(AtomicU64::new(u64::MAX)))
    }
}

impl Pending {
    /// Changes from `lsn` on were handed to the sinks.
    pub fn handed_over(&self, lsn: u64) {
        self.0.fetch_min(lsn, Ordering::Relaxed);
    }

    /// Everything handed over is durable.
    pub fn settled(&self) {
        self.0.store(u64::MAX, Ordering::Relaxed);
    }

    fn oldest(&self) -> Option<u64> {
        let lsn = self.0.load(Ordering::Relaxed);
        (lsn != u64::MAX).then_some(lsn)
    }
}

/// Measures the lag while it lives (aborted when dropped, with the session).
pub struct SlotLag(JoinHandle<()>);

impl Drop for SlotLag {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SlotLag {
    pub fn watch(
        config: Arc<CdcConfig>,
        connector: Arc<str>,
        metrics: Arc<ConnectorMetrics>,
        pending: Pending,
    ) -> Self {
        Self(tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut connection: Option<Client> = None;
            loop {
                tick.tick().await;
                if connection.as_ref().is_none_or(Client::is_closed) {
                    connection = client::connect(&config.connection, &connector).await.ok();
                }
                let Some(db) = &connection else { continue };
                // A failed measurement costs the figure, never the stream.
                match db.query_opt(POSITIONS, &[&config.slot]).await {
                    Ok(Some(row)) => {
                        let (Some(server), Some(confirmed)) =
                            (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
                        else {
                            continue;
                        };
                        let confirmed = u64::try_from(confirmed).unwrap_or(0);
                        let durable = pending.oldest().map_or(confirmed, |p| p.min(confirmed));
                        let server = u64::try_from(server).unwrap_or(0);
                        metrics.set_source_lag_bytes(server.saturating_sub(durable));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(connector = %connector, error = %e, "Measuring the slot's lag failed.");
                        connection = None;
                    }
                }
            }
        }))
    }
}
