//! The publication and the replication slot: created as Debezium's
//! `publication.autocreate.mode` says, and read back so a restart knows where it stands.

use pgwire_replication::{Lsn, ReplicationClient};
use tokio_postgres::Client;

use super::config::{CdcConfig, PublicationMode};
use crate::connectors::postgres::error::PgError;
use crate::connectors::postgres::query_config::quote_identifier;

/// Makes sure the publication exists (and, in `filtered` mode, lists exactly the captured
/// tables).
pub async fn ensure_publication(
    client: &Client,
    config: &CdcConfig,
    tables: &[(u32, String, String)],
) -> Result<(), PgError> {
    let name = quote_identifier(&config.publication);
    let exists = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&config.publication],
        )
        .await
        .map_err(PgError::postgres(format!(
            "reading publication {}",
            config.publication
        )))?
        .is_some();
    let listed = || {
        tables
            .iter()
            .map(|(_, s, t)| format!("{}.{}", quote_identifier(s), quote_identifier(t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Changes of a partitioned table's partitions published as the partitioned table's.
    let (with, set) = match config.publish_via_root {
        true => (
            " WITH (publish_via_partition_root = true)",
            format!("; ALTER PUBLICATION {name} SET (publish_via_partition_root = true)"),
        ),
        false => ("", String::new()),
    };
    let sql = match (config.publication_mode, exists) {
        (PublicationMode::Disabled, false) => {
            return Err(PgError::State(format!(
                "publication {:?} does not exist and publication.autocreate.mode=disabled: \
                 create it (CREATE PUBLICATION ... FOR TABLE ...) or choose another mode",
                config.publication
            )));
        }
        (PublicationMode::Filtered, _) if tables.is_empty() => {
            return Err(PgError::State(
                "no table matches the include/exclude lists: publication.autocreate.mode=filtered \
                 needs at least one captured table"
                    .into(),
            ));
        }
        (PublicationMode::Filtered, true) => {
            format!("ALTER PUBLICATION {name} SET TABLE {}{set}", listed())
        }
        (PublicationMode::Filtered, false) => {
            format!("CREATE PUBLICATION {name} FOR TABLE {}{with}", listed())
        }
        (PublicationMode::AllTables, false) => {
            format!("CREATE PUBLICATION {name} FOR ALL TABLES{with}")
        }
        (PublicationMode::NoTables, false) => format!("CREATE PUBLICATION {name}"),
        _ => return Ok(()),
    };
    let context = format!("setting up publication {} ({sql})", config.publication);
    client
        .batch_execute(&sql)
        .await
        .map_err(PgError::postgres(context))
}

/// The slot's confirmed position, or `None` when there is no such slot.
pub async fn confirmed_flush(client: &Client, slot: &str) -> Result<Option<u64>, PgError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, plugin, database FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(PgError::postgres(format!(
            "reading replication slot {slot}"
        )))?;
    let Some(row) = row else { return Ok(None) };
    let plugin: Option<String> = row.get(1);
    if plugin.as_deref() != Some("pgoutput") {
        return Err(PgError::State(format!(
            "replication slot {slot} exists with plugin {plugin:?}, not pgoutput: drop it or choose \
             another slot.name"
        )));
    }
    let lsn: Option<String> = row.get(0);
    Ok(Some(
        lsn.and_then(|l| Lsn::parse(&l).ok())
            .map_or(0, |l| l.as_u64()),
    ))
}

pub async fn drop_slot(client: &Client, slot: &str) -> Result<(), PgError> {
    client
        .execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map(|_| ())
        .map_err(PgError::postgres(format!("dropping replication slot {slot}")))
}

/// A slot created on the replication session: its consistent point and, when asked for, the
/// exported snapshot that sees exactly the data before that point.
#[derive(Debug)]
pub struct NewSlot {
    pub consistent_point: u64,
    pub snapshot: Option<String>,
}

pub async fn create_slot(
    repl: &mut ReplicationClient,
    slot: &str,
    export_snapshot: bool,
    temporary: bool,
) -> Result<NewSlot, PgError> {
    let mode = if export_snapshot {
        "EXPORT_SNAPSHOT"
    } else {
        "NOEXPORT_SNAPSHOT"
    };
    // A temporary slot is dropped by PostgreSQL when this session ends, however it ends.
    let temporary = if temporary { " TEMPORARY" } else { "" };
    let rows = repl
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {slot}{temporary} LOGICAL pgoutput {mode}"
        ))
        .await
        .map_err(|source| PgError::Replication {
            context: format!("creating replication slot {slot}"),
            source,
        })?;
    let row = rows.first().ok_or_else(|| {
        PgError::State(format!(
            "creating replication slot {slot}: the server returned no row"
        ))
    })?;
    let text = |i: usize| {
        row.get(i)
            .and_then(|v| v.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let consistent_point = text(1)
        .and_then(|l| Lsn::parse(&l).ok())
        .map(|l| l.as_u64())
        .ok_or_else(|| {
            PgError::State(format!(
                "creating replication slot {slot}: no consistent point"
            ))
        })?;
    Ok(NewSlot {
        consistent_point,
        snapshot: text(2),
    })
}
