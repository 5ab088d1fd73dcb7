//! The RedisSink task: records become operations in `write`; `flush` sends them as one
//! pipeline (or one guard script call) and succeeds only once Redis replied, so the runtime
//! acknowledges records only after they are in Redis. A failed flush keeps its operations and
//! is retried per `errors.retry.*`; the connection manager reconnects meanwhile.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::RedisError;
use super::config::{Layout, RedisSinkConfig};
use super::encode::{Op, encode};
use super::feast;
use crate::api::connector::Sink;
use crate::api::error::{ConnectorError, RecordError};
use crate::api::record::Record;

/// How long to wait for Redis to accept a connection or answer a request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the guard remembers a delete, so an older upsert arriving late cannot resurrect
/// the entity.
const DELETE_MEMORY_SECS: u64 = 86_400;

/// Applies a batch with the event-time guard, atomically. ARGV per operation:
/// `op ('U'|'D'), key, event_ms ('' if none), ttl_secs, n_set, (field, value)*, n_del, field*`.
static GUARDED_BATCH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        &r#"
local i = 1
local applied = 0
while i <= #ARGV do
  local op, key, ts, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local nset = tonumber(ARGV[i + 4])
  local sets_at = i + 5
  local ndel = tonumber(ARGV[sets_at + 2 * nset])
  local dels_at = sets_at + 2 * nset + 1
  i = dels_at + ndel
  local newer = true
  if ts ~= '' then
    local current = redis.call('HGET', key, '_ts') or redis.call('GET', key .. '#deleted_ts')
    if current and tonumber(current) > tonumber(ts) then newer = false end
  end
  if newer then
    applied = applied + 1
    if op == 'D' then
      redis.call('DEL', key)
      if ts ~= '' then redis.call('SET', key .. '#deleted_ts', ts, 'EX', DELETE_MEMORY_SECS) end
    else
      if nset > 0 then
        local args = {}
        for j = 0, nset - 1 do
          args[#args + 1] = ARGV[sets_at + 2 * j]
          args[#args + 1] = ARGV[sets_at + 2 * j + 1]
        end
        if ts ~= '' then args[#args + 1] = '_ts'; args[#args + 1] = ts end
        redis.call('HSET', key, unpack(args))
      end
      if ndel > 0 then
        local fields = {}
        for j = 0, ndel - 1 do fields[#fields + 1] = ARGV[dels_at + j] end
        redis.call('HDEL', key, unpack(fields))
      end
      if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    end
  end
end
return applied
"#
        .replace("DELETE_MEMORY_SECS", &DELETE_MEMORY_SECS.to_string()),
    )
});

/// `headwater.redis.RedisSink`.
pub struct RedisSink {
    config: RedisSinkConfig,
    /// The address for messages: the URI without credentials.
    addr: String,
    conn: Option<ConnectionManager>,
    /// Operations not sent yet (or to send again after a failure), in order.
    pending: Vec<Op>,
    /// Plain pipelines sent but not yet answered: the next batch is encoded while Redis
    /// works on these. `flush` waits for them.
    in_flight: Vec<InFlight>,
}

/// A pipeline on its way, with its operations kept for a resend.
struct InFlight {
    ops: Vec<Op>,
    reply: Reply,
}

/// A pipeline's reply: already there, or awaited by a task. The request itself was handed to
/// the connection in `send_pending`, in order.
enum Reply {
    Done(redis::RedisResult<()>),
    Waiting(tokio::task::JoinHandle<redis::RedisResult<()>>),
}

impl Reply {
    async fn outcome(self) -> redis::RedisResult<()> {
        match self {
            Self::Done(result) => result,
            Self::Waiting(task) => task.await.unwrap_or_else(|e| {
                Err(redis::RedisError::from(std::io::Error::other(
                    e.to_string(),
                )))
            }),
        }
    }
}

/// Pipelines in flight before a flush is due. A flush waits for all of their replies, and
/// Redis idles meanwhile, so the fewer flushes the better: with 2 the sink reached 0.39 of
/// `redis-benchmark`, with 16 it reached 0.69 (`cargo bench --bench redis_sink`). 16 batches
/// of 1,000 rows are a few MB of operations kept for a resend.
const MAX_IN_FLIGHT: usize = 16;

/// `redis://user:password@host:port/db` → `redis://host:port/db`.
fn without_credentials(uri: &str) -> String {
    match (uri.split_once("://"), uri.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &uri[at + 1..]),
        _ => uri.to_owned(),
    }
}

impl RedisSink {
    pub fn new(config: RedisSinkConfig) -> Self {
        Self {
            addr: without_credentials(&config.uri),
            config,
            conn: None,
            pending: Vec::new(),
            in_flight: Vec::new(),
        }
    }

    fn pipeline(&self, ops: &[Op]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        let ttl = self.config.ttl.map(|d| d.as_secs());
        for op in ops {
            match op {
                Op::Delete { key, .. } => {
                    pipe.del(key).ignore();
                }
                Op::FeastUpsert { .. } | Op::FeastDelete { .. } => {}
                Op::Upsert {
                    key, fields, json, ..
                } => match self.config.layout {
                    // Feast writes go through `write_feast`.
                    Layout::Feast => {}
                    Layout::String => {
                        match ttl {
                            Some(secs) => pipe.set_ex(key, json, secs).ignore(),
                            None => pipe.set(key, json).ignore(),
                        };
                    }
                    Layout::Hash => {
                        let set: Vec<(&str, &str)> = fields
                            .iter()
                            .filter_map(|(f, v)| v.as_deref().map(|v| (f.as_str(), v)))
                            .collect();
                        let del: Vec<&str> = fields
                            .iter()
                            .filter(|(_, v)| v.is_none())
                            .map(|(f, _)| f.as_str())
                            .collect();
                        if !set.is_empty() {
                            pipe.hset_multiple(key, &set).ignore();
                        }
                        if !del.is_empty() {
                            pipe.hdel(key, del).ignore();
                        }
                        if let Some(secs) = ttl {
                            pipe.expire(key, secs as i64).ignore();
                        }
                    }
                },
            }
        }
        pipe
    }

    fn guarded_invocation(&self) -> redis::ScriptInvocation<'static> {
        let mut invocation = GUARDED_BATCH.prepare_invoke();
        let ttl = self.config.ttl.map_or(0, |d| d.as_secs());
        for op in &self.pending {
            let (kind, key, event_ms) = match op {
                Op::Upsert { key, event_ms, .. } => ("U", key, event_ms),
                Op::Delete { key, event_ms } => ("D", key, event_ms),
                Op::FeastUpsert { .. } | Op::FeastDelete { .. } => continue,
            };
            invocation
                .arg(kind)
                .arg(key)
                .arg(event_ms.map(|t| t.to_string()).unwrap_or_default())
                .arg(ttl);
            let fields: &[(String, Option<String>)] = match op {
                Op::Upsert { fields, .. } => fields,
                _ => &[],
            };
            let set: Vec<_> = fields.iter().filter(|(_, v)| v.is_some()).collect();
            invocation.arg(set.len());
            for (f, v) in &set {
                invocation.arg(f).arg(v.as_deref().unwrap_or_default());
            }
            let del: Vec<_> = fields.iter().filter(|(_, v)| v.is_none()).collect();
            invocation.arg(del.len());
            for (f, _) in del {
                invocation.arg(f);
            }
        }
        invocation
    }
}

impl RedisSink {
    /// Feast's own write: read each entity's `_ts:<view>`, then write the rows whose event
    /// time (in whole seconds, as Feast compares) is newer, with the key TTL.
    async fn write_feast(
        &self,
        conn: &mut ConnectionManager,
        view: &str,
    ) -> redis::RedisResult<()> {
        let ts_field = format!("_ts:{view}");
        let mut read = redis::pipe();
        for op in &self.pending {
            if let Op::FeastUpsert { key, .. } = op {
                read.hget(key, &ts_field);
            }
        }
        let stored: Vec<Option<Vec<u8>>> = read.query_async(conn).await?;
        let mut stored = stored.into_iter();
        // Newest event second per key: what Redis holds, then earlier rows of this batch.
        let mut newest: std::collections::HashMap<&[u8], i64> = std::collections::HashMap::new();
        let mut write = redis::pipe();
        for op in &self.pending {
            match op {
                Op::FeastUpsert {
                    key,
                    fields,
                    event_ms,
                } => {
                    let seconds = event_ms.div_euclid(1000);
                    let in_redis = stored
                        .next()
                        .flatten()
                        .and_then(|b| feast::timestamp_seconds(&b))
                        .filter(|p| *p != 0);
                    let previous = newest.get(key.as_slice()).copied().or(in_redis);
                    if previous.is_some_and(|p| seconds <= p) {
                        continue;
                    }
                    newest.insert(key.as_slice(), seconds);
                    let mut items: Vec<(&[u8], Vec<u8>)> = fields
                        .iter()
                        .map(|(f, v)| (f.as_slice(), v.clone()))
                        .collect();
                    let ts = feast::encode_timestamp(seconds * 1000);
                    items.push((ts_field.as_bytes(), ts));
                    write.hset_multiple(key, &items).ignore();
                    if let Some(ttl) = self.config.ttl {
                        write.expire(key, ttl.as_secs() as i64).ignore();
                    }
                }
                Op::FeastDelete { key } => {
                    let mut names: Vec<Vec<u8>> = self
                        .config
                        .feast
                        .iter()
                        .flat_map(|f| {
                            f.features
                                .iter()
                                .map(|(n, _)| feast::feature_field(view, n))
                        })
                        .collect();
                    names.push(ts_field.as_bytes().to_vec());
                    write.hdel(key, names).ignore();
                }
                _ => {}
            }
        }
        write.query_async::<()>(conn).await
    }
}

#[async_trait]
impl Sink for RedisSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        // rediss:// needs a process-wide TLS crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connect_error = |source| {
            ConnectorError::retriable(
                "opening the Redis sink",
                RedisError::Connect {
                    addr: self.addr.clone(),
                    source,
                },
            )
        };
        let client = match &self.config.tls_ca_file {
            None => redis::Client::open(self.config.uri.as_str()).map_err(connect_error)?,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    ConnectorError::Config(format!(
                        "redis.tls.ca.file: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(self.config.uri.as_str(), certificates)
                    .map_err(connect_error)?
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2);
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(connect_error)?;
        self.conn = Some(conn);
        Ok(())
    }

    async fn write(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError> {
        let mut failed = Vec::new();
        for mut record in records {
            match encode(&mut record, &self.config) {
                Ok(Some(op)) => self.pending.push(op),
                Ok(None) => {}
                Err(e) => failed.push((record, e)),
            }
        }
        if self.pipelines_in_flight() {
            self.send_pending().await;
        }
        Ok(failed)
    }

    fn flush_due(&self) -> bool {
        !self.pipelines_in_flight() || self.in_flight.len() >= MAX_IN_FLIGHT
    }

    fn flush_deadline(&self) -> Option<tokio::time::Instant> {
        // Idle with replies outstanding: collect them promptly.
        (!self.in_flight.is_empty())
            .then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(1))
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        // Replies of the pipelines in flight, in order. After a failure every later batch is
        // sent again too (writes are idempotent), so a resent old batch never lands after a
        // newer one.
        let mut resend: Vec<Op> = Vec::new();
        let mut failure = None;
        for batch in self.in_flight.drain(..) {
            let outcome = batch.reply.outcome().await;
            match outcome {
                Ok(()) if failure.is_none() => {}
                Ok(()) => resend.extend(batch.ops),
                Err(e) => {
                    failure.get_or_insert(e);
                    resend.extend(batch.ops);
                }
            }
        }
        if !resend.is_empty() {
            resend.append(&mut self.pending);
            self.pending = resend;
        }
        if let Some(source) = failure {
            return Err(self.write_error(source));
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        // The manager is a cheap handle to one shared connection.
        let Some(mut conn) = self.conn.clone() else {
            return Err(ConnectorError::fatal(
                "writing to Redis",
                "flush called before open",
            ));
        };
        let result = if let Some(feast) = &self.config.feast {
            self.write_feast(&mut conn, &feast.view).await
        } else if self.config.timestamp_field.is_some() {
            let invocation = self.guarded_invocation();
            invocation.invoke_async::<i64>(&mut conn).await.map(|_| ())
        } else {
            self.pipeline(&self.pending)
                .query_async::<()>(&mut conn)
                .await
        };
        result.map_err(|source| self.write_error(source))?;
        self.pending.clear();
        Ok(())
    }
}

impl RedisSink {
    /// Plain pipelines (no guard, not Feast) are sent as soon as a batch is encoded.
    fn pipelines_in_flight(&self) -> bool {
        self.config.feast.is_none() && self.config.timestamp_field.is_none()
    }

    /// Hands the pending operations to the connection as one pipeline without waiting for the
    /// reply. Pipelines reach Redis in the order they were sent (a newer write to a key never
    /// lands before an older one): each is polled once here, which queues it on the shared
    /// connection, before the next is made.
    async fn send_pending(&mut self) {
        let Some(mut conn) = self.conn.clone() else {
            return;
        };
        if self.pending.is_empty() {
            return;
        }
        let ops = std::mem::take(&mut self.pending);
        let pipe = self.pipeline(&ops);
        let mut request = Box::pin(async move { pipe.query_async::<()>(&mut conn).await });
        // The first poll queues the request on the connection; the rest can finish anywhere.
        let first =
            std::future::poll_fn(|cx| std::task::Poll::Ready(request.as_mut().poll(cx))).await;
        let reply = match first {
            std::task::Poll::Ready(result) => Reply::Done(result),
            std::task::Poll::Pending => Reply::Waiting(tokio::spawn(request)),
        };
        self.in_flight.push(InFlight { ops, reply });
    }

    fn write_error(&self, source: redis::RedisError) -> ConnectorError {
        ConnectorError::retriable(
            "writing to Redis",
            RedisError::Write {
                addr: self.addr.clone(),
                records: self.pending.len(),
                source,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(without_credentials("redis://u:p@h:1/0"), "redis://h:1/0");
        assert_eq!(without_credentials("redis://h:1"), "redis://h:1");
    }
}
