//! The CDC task: sets up the publication and slot, snapshots when the snapshot mode says so,
//! then streams changes from the slot. A broken connection (PostgreSQL restarting, a network
//! cut) ends the session; the next one resumes from what the sinks acknowledged, after a
//! backoff.
//!
//! The slot is told a position only once every record before it is flushed by every sink
//! (`SourceContext::acknowledged`), and while nothing is in flight the keepalives' position
//! is confirmed too, so a slot whose tables are quiet never pins WAL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};
use serde_json::Value;
use tokio_postgres::Client;

use super::catalog::{self, Table};
use super::config::{CdcConfig, PublicationMode, SnapshotMode};
use super::event::{At, Change, Events, Op, TxOrder, now_us};
use super::incremental::{self, Incremental, Io, WATERMARK_PREFIX};
use super::kafka_signal::{self, KafkaSignal, KafkaSignals};
use super::lag::{Pending, SlotLag};
use super::notify::{INITIAL, Notifier};
use super::output::{Output, Resume};
use super::pgoutput::{self, Message, OldKind};
use super::signal::{self, Action};
use super::slot;
use super::snapshot::Snapshot;
use crate::api::connector::{BuildContext, Signal, Source, SourceContext};
use crate::api::error::ConnectorError;
use crate::api::retry::Backoff;
use crate::connectors::postgres::client;
use crate::connectors::postgres::error::PgError;

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// PostgreSQL timestamps count from 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Serial numbers skipped when an interrupted snapshot starts over: more than any number of
/// records that can be in flight, so none of the new records looks already written.
const SNAPSHOT_RESTART_GAP: u64 = 1 << 32;
/// The logical decoding message written at each heartbeat (non-transactional, so it arrives
/// at once and commits nothing).
const HEARTBEAT_PREFIX: &str = "headwater.heartbeat";
const HEARTBEAT_MARKER: &str = "SELECT pg_logical_emit_message(false, 'headwater.heartbeat', '')";
/// Session settings that fix the text forms `types.rs` parses.
const SESSION_OPTIONS: &str = "-c DateStyle=ISO -c IntervalStyle=iso_8601 -c extra_float_digits=1";

pub struct CdcSource {
    config: Arc<CdcConfig>,
    connector: Arc<str>,
    events: Events,
    notifier: Notifier,
    /// Signals sent through the REST API.
    signals: Option<tokio::sync::mpsc::Receiver<Signal>>,
}

impl CdcSource {
    pub fn new(config: CdcConfig, ctx: &BuildContext) -> Self {
        let config = Arc::new(config);
        let connector: Arc<str> = Arc::from(ctx.connector.as_str());
        Self {
            events: Events::new(Arc::clone(&config), Arc::clone(&connector)),
            notifier: Notifier::new(&config),
            signals: None,
            config,
            connector,
        }
    }

    async fn catalog_client(&self) -> Result<Client, PgError> {
        let client = client::connect(&self.config.connection, &self.connector).await?;
        client
            .batch_execute(
                "SET DateStyle TO ISO; SET IntervalStyle TO iso_8601; SET extra_float_digits TO 1",
            )
            .await
            .map_err(PgError::postgres("setting the session's text formats"))?;
        Ok(client)
    }

    fn replication_config(&self) -> ReplicationConfig {
        let c = &self.config;
        // As for the catalog connection, every TLS mode verifies the server's certificate. The
        // replication client matches host names only: for an IP address it verifies the chain
        // (the catalog connection, opened first, has already matched the address).
        let tls_on = matches!(c.sslmode.as_str(), "require" | "verify-ca" | "verify-full");
        let tls = if !tls_on {
            TlsConfig::disabled()
        } else if c.host.parse::<std::net::IpAddr>().is_ok() {
            TlsConfig::verify_ca(c.sslrootcert.clone())
        } else {
            TlsConfig::verify_full(c.sslrootcert.clone())
        };
        ReplicationConfig::new(
            c.host.clone(),
            c.user.clone(),
            c.password.clone(),
            c.dbname.clone(),
            c.slot.clone(),
            c.publication.clone(),
        )
        .with_port(c.port)
        .with_tls(tls)
        .with_buffer_size(c.max_queue_size)
        .with_status_interval(Duration::from_secs(1))
        .with_options(SESSION_OPTIONS)
        .with_application_name(format!("headwater-{}", self.connector))
    }

    /// One session: connect, set up, maybe snapshot, stream until an error or cancellation.
    /// `Ok(true)` means the task is done (`initial_only`).
    async fn session(&mut self, ctx: &mut dyn SourceContext) -> Result<bool, ConnectorError> {
        let retriable = |what: &str| {
            let what = what.to_owned();
            move |e: PgError| ConnectorError::retriable(what, e)
        };
        let client = self.catalog_client().await.map_err(|e| {
            // A refused login or a missing database will not fix itself: say so once.
            if e.needs_user() {
                ConnectorError::fatal("connecting to PostgreSQL", e)
            } else {
                ConnectorError::retriable("connecting to PostgreSQL", e)
            }
        })?;
        let tables = catalog::captured_tables(&client, &self.config)
            .await
            .map_err(retriable("listing captured tables"))?;
        slot::ensure_publication(&client, &self.config, &tables)
            .await
            .map_err(|e| ConnectorError::fatal("publication", e))?;
        let slot_position = slot::confirmed_flush(&client, &self.config.slot)
            .await
            .map_err(|e| ConnectorError::fatal("replication slot", e))?;

        let partition = super::event::partition_of(&self.config.prefix);
        let committed = ctx
            .acknowledged(&partition)
            .or_else(|| ctx.committed(&partition).cloned());
        let resume = committed.as_ref().map(Resume::from_offset);
        // An initial snapshot interrupted by a crash resumes as an incremental snapshot of
        // what it had not read, from the last key it emitted, when its slot is still there
        // (the stream then starts at the snapshot's consistent point).
        let resumable = matches!(
            self.config.snapshot_mode,
            SnapshotMode::Initial | SnapshotMode::WhenNeeded
        );
        let resume_initial = resumable
            && slot_position.is_some()
            && resume.as_ref().is_some_and(|r| r.snapshot_incomplete)
            && committed.as_ref().is_some_and(incremental::has_progress);
        let snapshot_needed = !resume_initial
            && match self.config.snapshot_mode {
                SnapshotMode::NoData => false,
                SnapshotMode::Always => true,
                SnapshotMode::Initial | SnapshotMode::InitialOnly => {
                    resume.as_ref().is_none_or(|r| r.snapshot_incomplete)
                }
                SnapshotMode::WhenNeeded => {
                    resume.as_ref().is_none_or(|r| r.snapshot_incomplete) || slot_position.is_none()
                }
            };
        if self.config.snapshot_mode == SnapshotMode::InitialOnly && !snapshot_needed {
            tracing::info!(connector = %self.connector, "snapshot.mode=initial_only: the snapshot is complete; nothing to do.");
            return Ok(true);
        }
        let mut serial = resume.as_ref().map_or(0, |r| r.serial);
        if snapshot_needed && resume.as_ref().is_some_and(|r| r.snapshot_incomplete) {
            serial += SNAPSHOT_RESTART_GAP;
        }
        // A snapshot needs a slot created now, for its exported snapshot: an older slot goes.
        if snapshot_needed && slot_position.is_some() {
            slot::drop_slot(&client, &self.config.slot)
                .await
                .map_err(retriable("replication slot"))?;
        }
        let mut repl = ReplicationClient::connect_gated(self.replication_config())
            .await
            .map_err(|e| ConnectorError::retriable("replication connection", e))?;
        let mut out = Output::new(&self.config.prefix, serial, self.config.max_batch_size);
        if let Some(committed) = &committed
            && let Value::Object(map) = committed
        {
            for (k, v) in map {
                out.set(k, v.clone());
            }
        }
        // Tables captured now and not at the last start (table.include.list changed) are
        // snapshotted incrementally once streaming runs; the initial snapshot covers all.
        let captured = data_tables(&self.config, &tables);
        let known = committed
            .as_ref()
            .and_then(|c| c.get(CAPTURED_TABLES_KEY))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok());
        let added = match known {
            Some(known)
                if !snapshot_needed && self.config.snapshot_mode != SnapshotMode::NoData =>
            {
                captured
                    .iter()
                    .filter(|t| !known.contains(t))
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
        // Recorded now, so that the snapshot's batches carry it; with tables added, once
        // their snapshot's progress is in the offset too (`Stream::snapshot_added`).
        if added.is_empty() {
            out.set(CAPTURED_TABLES_KEY, json_list(&captured));
        }
        let created = if snapshot_needed || slot_position.is_none() {
            Some(
                slot::create_slot(
                    &mut repl,
                    &self.config.slot,
                    snapshot_needed,
                    self.config.temporary_slot,
                )
                .await
                .map_err(retriable("replication slot"))?,
            )
        } else {
            None
        };
        if !snapshot_needed
            && let Some(record) = self.notifier.notify(None, INITIAL, "SKIPPED", &[])
        {
            out.push([record], &self.events);
        }
        if snapshot_needed {
            let created = created.as_ref().expect("created above when snapshotting");
            let exported = created.snapshot.clone().ok_or_else(|| {
                ConnectorError::fatal("snapshot", "the server exported no snapshot".to_owned())
            })?;
            let mut snapshot = Snapshot {
                client: &client,
                config: &self.config,
                events: &self.events,
                out: &mut out,
                lsn: created.consistent_point,
                emitted: 0,
                notifier: &self.notifier,
                resumable,
                progress: None,
            };
            snapshot.run(ctx, &exported, &tables).await?;
            if ctx.cancellation().is_cancelled() {
                return Ok(false);
            }
            // Streaming starts after the snapshot: nothing before the consistent point.
            out.remove("snapshot");
            out.remove("last_snapshot_record");
            // `lsn` alone (the consistent point) says what a restart skips: transactions that
            // committed before it, which the snapshot holds.
            out.remove("lsn_commit");
            out.remove("lsn_proc");
            if self.config.snapshot_mode == SnapshotMode::InitialOnly {
                out.flush(ctx).await?;
                return Ok(true);
            }
        } else if let Some(created) = &created {
            out.set("lsn", created.consistent_point);
        }
        if resume_initial {
            tracing::info!(connector = %self.connector, "The initial snapshot was interrupted: the tables it had not finished are read incrementally, from the last row it emitted, while changes stream from its consistent point.");
            // From here on the offset is a streaming one with an incremental snapshot under
            // way (a second crash resumes that).
            out.remove("snapshot");
            out.remove("last_snapshot_record");
        }
        let resume = if snapshot_needed { None } else { resume };
        // An incremental snapshot under way resumes after the last row it emitted.
        let mut incremental =
            Incremental::new(Arc::clone(&self.config), Arc::clone(&self.connector));
        if !snapshot_needed && let Some(committed) = &committed {
            incremental.resume_from(committed);
        }
        repl.start()
            .await
            .map_err(|e| ConnectorError::retriable("starting replication", e))?;
        repl.wait_started().await.map_err(|e| {
            ConnectorError::retriable(
                format!("starting replication from slot {}", self.config.slot),
                e,
            )
        })?;
        tracing::info!(connector = %self.connector, slot = %self.config.slot, "Streaming changes.");
        let mut stream = Stream {
            config: Arc::clone(&self.config),
            connector: Arc::clone(&self.connector),
            client,
            tables: HashMap::new(),
            tx: None,
            last_commit_lsn: None,
            resume,
            out,
            incremental,
            notifier: &self.notifier,
            captured,
            added,
            pending: Pending::default(),
            unsent_from: None,
        };
        let _lag = SlotLag::watch(
            Arc::clone(&self.config),
            Arc::clone(&self.connector),
            Arc::clone(ctx.metrics()),
            stream.pending.clone(),
        );
        let mut signals = self.signals.take();
        let last_kafka_signal = committed
            .as_ref()
            .and_then(|c| c.get(kafka_signal::OFFSET_KEY))
            .and_then(Value::as_i64);
        let mut kafka_signals = match &self.config.kafka_signals {
            Some(config) => Some(KafkaSignals::start(
                config,
                &self.connector,
                &self.config.prefix,
                last_kafka_signal,
            )?),
            None => None,
        };
        let result = match stream.resume_incremental(&self.events).await {
            Ok(()) => {
                let channels = Channels {
                    rest: &mut signals,
                    kafka: &mut kafka_signals,
                };
                stream.run(ctx, &mut repl, &self.events, channels).await
            }
            Err(e) => Err(e),
        };
        self.signals = signals;
        if ctx.cancellation().is_cancelled() {
            // Confirm what the sinks flushed before stopping.
            stream.confirm(ctx, &repl);
            let _ = repl.shutdown().await;
            if self.config.slot_drop_on_stop {
                let _ = slot::drop_slot(&stream.client, &self.config.slot).await;
            }
        }
        result.map(|()| false)
    }
}

#[async_trait]
impl Source for CdcSource {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError> {
        self.signals = ctx.take_signals();
        ctx.may_go_unread(self.config.auxiliary_topics());
        let mut backoff = Backoff::new(Duration::from_millis(250), MAX_BACKOFF);
        loop {
            if ctx.cancellation().is_cancelled() {
                return Ok(());
            }
            match self.session(ctx).await {
                Ok(true) => return Ok(()),
                Ok(false) if ctx.cancellation().is_cancelled() => return Ok(()),
                Ok(false) => backoff.reset(),
                Err(e) if e.is_retriable() => {
                    tracing::warn!(
                        connector = %self.connector,
                        error = %e.trace(),
                        retry_in_ms = backoff.delay().as_millis() as u64,
                        "PostgreSQL CDC session ended; reconnecting."
                    );
                    let cancel = ctx.cancellation().clone();
                    if !backoff.wait(&cancel).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Where signals come from besides the signalling table.
struct Channels<'a> {
    /// The REST API's (`POST /connectors/{name}/signals`).
    rest: &'a mut Option<tokio::sync::mpsc::Receiver<Signal>>,
    kafka: &'a mut Option<KafkaSignals>,
}

/// The transaction being streamed.
struct OpenTx {
    xid: u32,
    commit_lsn: u64,
    commit_us: i64,
    /// Its events, numbered as Debezium numbers them.
    order: TxOrder,
    /// Its BEGIN event is out (with `provide.transaction.metadata`).
    begun: bool,
}

struct Stream<'n> {
    config: Arc<CdcConfig>,
    connector: Arc<str>,
    client: Client,
    /// Relation id → the table, `None` when not captured.
    tables: HashMap<u32, Option<Arc<Table>>>,
    tx: Option<OpenTx>,
    last_commit_lsn: Option<u64>,
    resume: Option<Resume>,
    out: Output,
    incremental: Incremental,
    notifier: &'n Notifier,
    /// The captured tables (`schema.table`) as of the last look at the catalog.
    captured: Vec<String>,
    /// Tables captured since the last start, to snapshot once streaming runs.
    added: Vec<String>,
    /// Where the oldest change handed to the sinks and not yet durable starts (for the lag).
    pending: Pending,
    /// Where the oldest change in `out` starts.
    unsent_from: Option<u64>,
}

impl Stream<'_> {
    /// Tells the slot the newest position every sink has flushed.
    fn confirm(&self, ctx: &dyn SourceContext, repl: &ReplicationClient) {
        if self.out.is_empty() && ctx.in_flight() == 0 {
            self.pending.settled();
        }
        if let Some(lsn) = ctx
            .acknowledged(self.out.partition())
            .and_then(|o| o.get("lsn").and_then(Value::as_u64))
        {
            repl.update_applied_lsn(Lsn::from_u64(lsn));
        }
    }

    async fn run(
        &mut self,
        ctx: &mut dyn SourceContext,
        repl: &mut ReplicationClient,
        events: &Events,
        channels: Channels<'_>,
    ) -> Result<(), ConnectorError> {
        let Channels {
            rest: signals,
            kafka: kafka_signals,
        } = channels;
        let cancel = ctx.cancellation().clone();
        let mut heartbeat = self.config.heartbeat.map(|every| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        // Sinks acknowledge after the fact: look for newly flushed positions now and then even
        // when the stream is idle.
        let mut confirm_tick = tokio::time::interval(Duration::from_millis(500));
        // A `filtered` publication lists its tables: new ones are looked for now and then.
        let polls = self.config.publication_mode == PublicationMode::Filtered;
        let mut table_poll = tokio::time::interval(self.config.table_poll);
        table_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        table_poll.reset();

        loop {
            // Take whatever is ready at once; hand the batch on when nothing more is.
            let event = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    // Inside a transaction the batch may end in a run of changes sharing an
                    // LSN (see `Output::full_before`): it is left to be streamed again.
                    return match self.tx {
                        None => self.flush(ctx).await,
                        Some(_) => Ok(()),
                    };
                }
                signal = async { signals.as_mut().expect("guarded").recv().await }, if signals.is_some() => {
                    match signal {
                        Some(signal) => self.channel_signal(signal, events).await?,
                        // The runtime dropped its end: the task is stopping.
                        None => *signals = None,
                    }
                    continue;
                }
                signal = async { kafka_signals.as_mut().expect("guarded").next().await }, if kafka_signals.is_some() => {
                    self.kafka_signal(signal, events).await?;
                    continue;
                }
                event = repl.recv() => event,
                // Whole transactions only: mid-transaction a batch is handed on when full,
                // at an LSN boundary (see the XLogData branch).
                _ = std::future::ready(()), if !self.out.is_empty() && self.tx.is_none() => {
                    self.flush(ctx).await?;
                    continue;
                }
                _ = table_poll.tick(), if polls && self.tx.is_none() => {
                    self.poll_new_tables(events).await?;
                    continue;
                }
                _ = confirm_tick.tick() => {
                    self.confirm(ctx, repl);
                    ctx.idle().await?;
                    continue;
                }
                _ = async { heartbeat.as_mut().expect("guarded").tick().await }, if heartbeat.is_some() => {
                    if self.tx.is_none() {
                        self.out.push([events.heartbeat()], events);
                        self.flush(ctx).await?;
                    }
                    if self.tx.is_none() && !self.config.read_only {
                        // A marker through the slot: when it comes back and nothing of ours
                        // is in flight, the slot may move up to it even if the captured tables
                        // are quiet while others are busy (Debezium's heartbeat.action.query).
                        if let Err(e) = self
                            .client
                            .batch_execute(HEARTBEAT_MARKER)
                            .await
                        {
                            return Err(ConnectorError::retriable("heartbeat", PgError::postgres("emitting a heartbeat message")(e)));
                        }
                    }
                    if let Some(query) = &self.config.heartbeat_query
                        && let Err(e) = self.client.batch_execute(query).await
                    {
                        // The server refusing the query is the query's fault: retrying would
                        // not help. A lost connection is retried.
                        let refused = e.as_db_error().is_some();
                        let error = PgError::postgres(format!("running heartbeat.action.query {query:?}"))(e);
                        return Err(match refused {
                            true => ConnectorError::fatal("heartbeat", error),
                            false => ConnectorError::retriable("heartbeat", error),
                        });
                    }
                    continue;
                }
            };
            let event = event
                .map_err(|e| ConnectorError::retriable("replication stream", e))?
                .ok_or_else(|| {
                    ConnectorError::retriable(
                        "replication stream",
                        "the server ended the replication stream".to_owned(),
                    )
                })?;
            match event {
                ReplicationEvent::Begin {
                    final_lsn,
                    xid,
                    commit_time_micros,
                } => {
                    // Every transaction committed before this one has been streamed.
                    self.streamed(events, final_lsn.as_u64()).await?;
                    self.tx = Some(OpenTx {
                        xid,
                        commit_lsn: final_lsn.as_u64(),
                        commit_us: commit_time_micros + PG_EPOCH_US,
                        order: TxOrder::new(xid),
                        begun: false,
                    });
                }
                ReplicationEvent::XLogData {
                    wal_start, data, ..
                } => {
                    // A large transaction is handed on in batches as it streams, not held
                    // whole until its COMMIT (two 100,000-row transactions took ~1.2 GiB): a
                    // full batch goes once a message at a later LSN shows that no change of
                    // the batch's last LSN is still to come. Its offset names the transaction
                    // and its last change, so a restart replays the transaction and skips what
                    // was delivered.
                    if self.tx.is_some() && self.out.full_before(wal_start.as_u64()) {
                        self.flush(ctx).await?;
                    }
                    let message = pgoutput::decode(&data)
                        .map_err(|e| ConnectorError::fatal("decoding the replication stream", e))?;
                    self.begin(wal_start.as_u64(), events);
                    self.message(message, wal_start.as_u64(), events).await?;
                }
                ReplicationEvent::Commit { lsn, end_lsn, .. } => {
                    self.begin(lsn.as_u64(), events);
                    if let Some(tx) = self.tx.take() {
                        self.incremental.committed(tx.xid);
                        let delivered = self
                            .resume
                            .as_ref()
                            .is_some_and(|r| r.delivered(tx.commit_lsn, lsn.as_u64()));
                        if self.config.transaction_metadata && !delivered {
                            // Every transaction the slot sends has its BEGIN and END, even one
                            // whose changes were all skipped (a TRUNCATE): END then counts 0.
                            let id = format!("{}:{}", tx.xid, lsn.as_u64());
                            let end = events.transaction_event(
                                &id,
                                tx.commit_us,
                                Some((tx.order.events, &tx.order.per_table)),
                            );
                            self.out.push([end], events);
                        }
                        let age_us = now_us().saturating_sub(tx.commit_us).max(0);
                        ctx.metrics()
                            .set_source_lag(Duration::from_micros(age_us.unsigned_abs()));
                        self.out.set("lsn_commit", tx.commit_lsn);
                        self.out.set("txId", i64::from(tx.xid));
                        self.out.set("ts_usec", tx.commit_us);
                    }
                    self.last_commit_lsn = Some(lsn.as_u64());
                    // The whole transaction is out: the slot may move past its end.
                    self.out.set("lsn", end_lsn.as_u64());
                    self.streamed(events, end_lsn.as_u64()).await?;
                    if self.out.full() {
                        self.flush(ctx).await?;
                    }
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    // Nothing of ours is in flight: everything up to the server's position is
                    // settled, whatever other tables wrote.
                    if self.tx.is_none() && self.out.is_empty() && ctx.in_flight() == 0 {
                        repl.update_applied_lsn(wal_end);
                        ctx.metrics().set_source_lag(Duration::ZERO);
                    }
                    if self.tx.is_none() {
                        self.streamed(events, wal_end.as_u64()).await?;
                    }
                }
                ReplicationEvent::Message {
                    lsn,
                    prefix,
                    content,
                    ..
                } if prefix == WATERMARK_PREFIX => {
                    let id = String::from_utf8_lossy(&content);
                    let action = match id.ends_with("-close") {
                        true => Action::WindowClose,
                        false => Action::WindowOpen,
                    };
                    let (incremental, mut io) = self.incremental_io(events);
                    incremental
                        .watermark(&mut io, &id, &action, lsn.as_u64())
                        .await
                        .map_err(incremental_failed)?;
                }
                ReplicationEvent::Message { lsn, prefix, .. } => {
                    if prefix == HEARTBEAT_PREFIX
                        && self.tx.is_none()
                        && self.out.is_empty()
                        && ctx.in_flight() == 0
                    {
                        self.out.set("lsn", lsn.as_u64());
                        repl.update_applied_lsn(lsn);
                    }
                }
                ReplicationEvent::StoppedAt { .. } => {}
            }
        }
    }

    /// Emits the open transaction's BEGIN event at its first message (at `lsn`), as Debezium
    /// does for every transaction it receives, with `provide.transaction.metadata`.
    fn begin(&mut self, lsn: u64, events: &Events) {
        let Some(tx) = self.tx.as_mut().filter(|tx| !tx.begun) else {
            return;
        };
        tx.begun = true;
        let delivered = self
            .resume
            .as_ref()
            .is_some_and(|r| r.delivered(tx.commit_lsn, lsn));
        if self.config.transaction_metadata && !delivered {
            let id = format!("{}:{lsn}", tx.xid);
            let begin = events.transaction_event(&id, tx.commit_us, None);
            self.out.push([begin], events);
        }
    }

    /// Whether the change at `lsn` of the open transaction was delivered before a restart.
    fn delivered(&self, lsn: u64) -> bool {
        self.tx.as_ref().is_some_and(|tx| {
            self.resume
                .as_ref()
                .is_some_and(|r| r.delivered(tx.commit_lsn, lsn))
        })
    }

    /// Hands what `out` holds to the sinks.
    async fn flush(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError> {
        if let Some(lsn) = self.unsent_from.take() {
            self.pending.handed_over(lsn);
        }
        self.out.flush(ctx).await
    }

    /// The stream has delivered every transaction committed before `lsn`.
    async fn streamed(&mut self, events: &Events, lsn: u64) -> Result<(), ConnectorError> {
        if !self.config.read_only {
            return Ok(());
        }
        let (incremental, mut io) = self.incremental_io(events);
        incremental
            .streamed(&mut io, lsn)
            .await
            .map_err(incremental_failed)
    }

    /// The incremental snapshot, and what it works with.
    fn incremental_io<'s>(&'s mut self, events: &'s Events) -> (&'s mut Incremental, Io<'s>) {
        let io = Io {
            client: &self.client,
            events,
            out: &mut self.out,
            notifier: self.notifier,
        };
        (&mut self.incremental, io)
    }

    /// A snapshot read back from the offsets continues once streaming runs; tables captured
    /// since the last start are snapshotted.
    async fn resume_incremental(&mut self, events: &Events) -> Result<(), ConnectorError> {
        let (incremental, mut io) = self.incremental_io(events);
        incremental
            .restart(&mut io)
            .await
            .map_err(incremental_failed)?;
        let added = std::mem::take(&mut self.added);
        if !added.is_empty() {
            tracing::info!(connector = %self.connector, tables = %added.join(","), "Tables newly captured: snapshotting them incrementally.");
            self.snapshot_added(events, added).await?;
        }
        Ok(())
    }

    /// Snapshots tables newly captured (not with `snapshot.mode=no_data`) and records the
    /// captured tables in the offset, in the same batch as the snapshot's progress: a crash
    /// resumes the snapshot, never forgets it.
    async fn snapshot_added(
        &mut self,
        events: &Events,
        added: Vec<String>,
    ) -> Result<(), ConnectorError> {
        if self.config.snapshot_mode != SnapshotMode::NoData {
            let (incremental, mut io) = self.incremental_io(events);
            incremental
                .snapshot_added(&mut io, added)
                .await
                .map_err(incremental_failed)?;
        }
        self.out.set(CAPTURED_TABLES_KEY, json_list(&self.captured));
        Ok(())
    }

    /// Looks for tables created under a captured pattern while streaming (`filtered`
    /// publications list their tables): adds them to the publication, then snapshots them
    /// incrementally (rows written before the publication had them are read, later ones
    /// stream).
    async fn poll_new_tables(&mut self, events: &Events) -> Result<(), ConnectorError> {
        let tables = catalog::captured_tables(&self.client, &self.config)
            .await
            .map_err(|e| ConnectorError::retriable("listing captured tables", e))?;
        let now = data_tables(&self.config, &tables);
        let added: Vec<String> = now
            .iter()
            .filter(|t| !self.captured.contains(t))
            .cloned()
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        slot::ensure_publication(&self.client, &self.config, &tables)
            .await
            .map_err(|e| ConnectorError::retriable("adding new tables to the publication", e))?;
        tracing::info!(connector = %self.connector, tables = %added.join(","), "New tables under the capture's patterns: added to the publication, snapshotting them incrementally.");
        self.captured = now;
        self.snapshot_added(events, added).await
    }

    /// A row inserted into the signalling table: `(id, type, data)`.
    async fn signal_row(
        &mut self,
        row: &[pgoutput::Cell],
        lsn: u64,
        events: &Events,
    ) -> Result<(), ConnectorError> {
        // A signal delivered before a restart was acted on then.
        if self.delivered(lsn) {
            return Ok(());
        }
        let (Some(id), Some(kind)) = (text(row, 0), text(row, 1)) else {
            tracing::warn!(connector = %self.connector(), "A signal without id or type is ignored.");
            return Ok(());
        };
        let data = text(row, 2);
        match signal::parse(&kind, data.as_deref()) {
            Ok(action @ (Action::WindowOpen | Action::WindowClose)) => {
                let (incremental, mut io) = self.incremental_io(events);
                incremental
                    .watermark(&mut io, &id, &action, lsn)
                    .await
                    .map_err(incremental_failed)
            }
            Ok(action) if self.config.source_signals => self.act(&id, action, events).await,
            Ok(_) => {
                tracing::debug!(signal = %id, "Signal ignored: the source channel is not enabled.");
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(connector = %self.connector(), signal = %id, r#type = %kind, %reason, "Signal ignored.");
                Ok(())
            }
        }
    }

    /// A signal read from the `kafka` channel: acted on, and its offset kept in the
    /// connector's offset (a restart reads from the next one).
    async fn kafka_signal(
        &mut self,
        signal: KafkaSignal,
        events: &Events,
    ) -> Result<(), ConnectorError> {
        // Set first, so that the records the signal produces carry it.
        self.out.set(kafka_signal::OFFSET_KEY, signal.offset);
        self.channel_signal(signal.signal, events).await
    }

    /// A signal sent through the REST API or the `kafka` channel.
    async fn channel_signal(
        &mut self,
        signal: Signal,
        events: &Events,
    ) -> Result<(), ConnectorError> {
        match signal::parse(&signal.kind, signal.data.as_deref()) {
            Ok(Action::WindowOpen | Action::WindowClose) => {
                tracing::warn!(connector = %self.connector(), signal = %signal.id, "Watermark signals come from the signalling table only; ignored.");
                Ok(())
            }
            Ok(action) => self.act(&signal.id, action, events).await,
            Err(reason) => {
                tracing::warn!(connector = %self.connector(), signal = %signal.id, r#type = %signal.kind, %reason, "Signal ignored.");
                Ok(())
            }
        }
    }

    fn connector(&self) -> &str {
        &self.connector
    }

    async fn act(
        &mut self,
        id: &str,
        action: Action,
        events: &Events,
    ) -> Result<(), ConnectorError> {
        let (incremental, mut io) = self.incremental_io(events);
        let result = match action {
            Action::ExecuteSnapshot(request) => incremental.execute(&mut io, id, request).await,
            Action::StopSnapshot { collections } => {
                incremental.stop(collections);
                Ok(())
            }
            Action::PauseSnapshot => {
                incremental.pause(&mut io);
                Ok(())
            }
            Action::ResumeSnapshot => incremental.resume(&mut io).await,
            Action::Log { message } => {
                tracing::info!(connector = %self.connector, signal = %id, "{message}");
                Ok(())
            }
            Action::WindowOpen | Action::WindowClose => Ok(()),
        };
        result.map_err(incremental_failed)
    }

    fn table(&self, relation: u32) -> Option<Arc<Table>> {
        self.tables.get(&relation).cloned().flatten()
    }

    async fn message(
        &mut self,
        message: Message,
        lsn: u64,
        events: &Events,
    ) -> Result<(), ConnectorError> {
        let xid = self.tx.as_ref().map_or(0, |tx| tx.xid);
        match message {
            Message::Relation(relation) => {
                let captured = self.config.filters.table(&relation.schema, &relation.table);
                let table = if captured {
                    Some(
                        catalog::from_relation(&self.client, &self.config, &relation)
                            .await
                            .map_err(|e| ConnectorError::retriable("reading the catalog", e))?,
                    )
                } else {
                    None
                };
                self.tables.insert(relation.id, table);
            }
            Message::Insert { relation, new } => {
                if let Some(table) = self.table(relation) {
                    if self.config.filters.is_signal(&table.schema, &table.name) {
                        // The signal acts first, then its row is emitted (as in Debezium).
                        self.signal_row(&new, lsn, events).await?;
                    } else {
                        self.incremental.deduplicate(&table, &new, xid);
                    }
                    if !self.config.skipped.create {
                        self.change(&table, Op::Create, None, false, Some(&new), lsn, events);
                    }
                }
            }
            Message::Update { relation, old, new } => {
                if let Some(table) = self.table(relation) {
                    self.incremental.deduplicate(&table, &new, xid);
                    if let Some((_, old)) = &old {
                        self.incremental.deduplicate(&table, old, xid);
                    }
                }
                if let Some(table) = self.table(relation)
                    && !self.config.skipped.update
                {
                    let (old, full) = match &old {
                        Some((kind, tuple)) => (Some(tuple.as_slice()), *kind == OldKind::Full),
                        None => (None, false),
                    };
                    self.change(&table, Op::Update, old, full, Some(&new), lsn, events);
                }
            }
            Message::Delete { relation, old } => {
                if let Some(table) = self.table(relation) {
                    if self.config.filters.is_signal(&table.schema, &table.name) {
                        // insert_delete closes a window by deleting its opening row.
                        if let Some(id) = text(&old.1, 0)
                            && !self.delivered(lsn)
                        {
                            let (incremental, mut io) = self.incremental_io(events);
                            incremental
                                .deleted_watermark(&mut io, &id, lsn)
                                .await
                                .map_err(incremental_failed)?;
                        }
                    } else {
                        self.incremental.deduplicate(&table, &old.1, xid);
                    }
                }
                if let Some(table) = self.table(relation)
                    && !self.config.skipped.delete
                {
                    let full = old.0 == OldKind::Full;
                    self.change(&table, Op::Delete, Some(&old.1), full, None, lsn, events);
                }
            }
            Message::Truncate { relations } => {
                if !self.config.skipped.truncate {
                    for relation in relations {
                        if let Some(table) = self.table(relation) {
                            self.change(&table, Op::Truncate, None, false, None, lsn, events);
                        }
                    }
                }
            }
            Message::Type { .. } | Message::Origin { .. } | Message::Other(_) => {}
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        table: &Arc<Table>,
        op: Op,
        old: Option<&[pgoutput::Cell]>,
        old_full: bool,
        new: Option<&[pgoutput::Cell]>,
        lsn: u64,
        events: &Events,
    ) {
        let Some(tx) = self.tx.as_mut() else {
            tracing::warn!(table = %table.name, "A change outside a transaction is ignored.");
            return;
        };
        self.unsent_from.get_or_insert(lsn);
        // Counted even when delivered before (a resume inside the transaction), so that the
        // events sent now carry their place in it.
        let delivered = self
            .resume
            .as_ref()
            .is_some_and(|r| r.delivered(tx.commit_lsn, lsn));
        let collection = format!("{}.{}", table.schema, table.name);
        let mut records = Vec::with_capacity(3);
        let change = Change {
            table,
            op,
            old,
            old_full,
            new,
            at: At {
                ts_us: tx.commit_us,
                snapshot: "false",
                lsn: Some(lsn),
                last_commit_lsn: self.last_commit_lsn,
                tx_id: Some(i64::from(tx.xid)),
            },
            tx: self.config.transaction_metadata.then_some(&mut tx.order),
        };
        let commit_lsn = tx.commit_lsn;
        let built = events.change(change, &mut records);
        if delivered {
            return;
        }
        match built {
            Ok(()) => self.out.push(records, events),
            Err(message) => self.out.fail(
                &table.topic,
                format!("{collection} at LSN {}: {message}", Lsn::from_u64(lsn)),
            ),
        }
        self.out.set("lsn_proc", lsn);
        self.out.set("lsn_commit", commit_lsn);
    }
}

/// Offset key: the captured tables as of the last start, so that a table added to the capture
/// since is snapshotted (a JSON list of `schema.table`, as text).
const CAPTURED_TABLES_KEY: &str = "headwater_captured_tables";

/// The tables captured for their data (the signalling table aside), as `schema.table`.
fn data_tables(config: &CdcConfig, tables: &[(u32, String, String)]) -> Vec<String> {
    tables
        .iter()
        .filter(|(_, schema, table)| config.filters.data(schema, table))
        .map(|(_, schema, table)| format!("{schema}.{table}"))
        .collect()
}

fn json_list(tables: &[String]) -> String {
    serde_json::to_string(tables).unwrap_or_default()
}

/// A failed incremental snapshot step (a watermark or chunk query the server refused, a lost
/// connection) ends the session; the next one resumes the snapshot from the offsets.
fn incremental_failed(e: PgError) -> ConnectorError {
    ConnectorError::retriable("incremental snapshot", e)
}

/// The text of column `i` of a row.
fn text(row: &[pgoutput::Cell], i: usize) -> Option<String> {
    match row.get(i) {
        Some(pgoutput::Cell::Text(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}
