//! What the catalog says about a captured table, turned into the schemas Debezium gives its
//! events: column kinds and nullability, the key, the replica identity.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio_postgres::Client;

use super::config::CdcConfig;
use super::pgoutput::Relation;
use super::types::{Kind, TypeInfo, default_value, field_schema, kind_of};
use crate::api::record::Schema;
use crate::connectors::postgres::error::PgError;

/// One column as events show it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    pub optional: bool,
    /// The schema default (from the column's DEFAULT).
    pub default: Option<Value>,
    /// Left out of events by `column.include.list` / `column.exclude.list`.
    pub kept: bool,
}

/// A captured table and its event schemas, built once per layout.
#[derive(Debug)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub topic: String,
    /// In the order pgoutput and `SELECT *` deliver them.
    pub columns: Vec<Column>,
    /// Indexes of the key columns (primary key, or `message.key.columns`).
    pub key: Vec<usize>,
    pub key_schema: Option<Schema>,
    pub envelope_schema: Schema,
}

/// The catalog row of one column.
#[derive(Debug, Clone)]
struct CatalogColumn {
    name: String,
    info: TypeInfo,
    not_null: bool,
    default_expr: Option<String>,
}

const COLUMNS_SQL: &str = "\
SELECT a.attname::text,
       COALESCE(NULLIF(t.typbasetype, 0), a.atttypid)::oid AS type_oid,
       a.atttypmod,
       a.attnotnull,
       t.typtype::text,
       CASE WHEN t.typcategory = 'A' THEN t.typelem END AS element,
       (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e
         WHERE e.enumtypid = CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE t.oid END) AS labels,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       t.typname::text
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
 ORDER BY a.attnum";

const PRIMARY_KEY_SQL: &str = "\
SELECT a.attname::text
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1 AND i.indisprimary
 ORDER BY k.ord";

const TABLE_SQL: &str = "\
SELECT n.nspname::text, c.relname::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = $1";

/// Tables the filters capture, in Debezium's snapshot order (see `Filters::snapshot_ranking`).
pub async fn captured_tables(
    client: &Client,
    config: &CdcConfig,
) -> Result<Vec<(u32, String, String)>, PgError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
              ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(PgError::postgres("listing tables"))?;
    let mut tables: Vec<(u32, String, String)> = rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .filter(|(_, schema, table): &(u32, String, String)| config.filters.table(schema, table))
        .collect();
    // The query gives them by schema and name; a stable sort keeps that within a rank.
    let rank = config.filters.snapshot_ranking();
    tables.sort_by_key(|(_, schema, table)| rank(schema, table));
    Ok(tables)
}

async fn catalog_columns(client: &Client, oid: u32) -> Result<Vec<CatalogColumn>, PgError> {
    let rows = client
        .query(COLUMNS_SQL, &[&oid])
        .await
        .map_err(PgError::postgres(format!(
            "reading the columns of table {oid}"
        )))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let typtype: String = r.get(4);
            CatalogColumn {
                name: r.get(0),
                info: TypeInfo {
                    oid: r.get(1),
                    modifier: r.get(2),
                    typtype: typtype.bytes().next().unwrap_or(b'b'),
                    element: r.get(5),
                    enum_values: r.get(6),
                    name: r.get(8),
                },
                not_null: r.get(3),
                default_expr: r.get(7),
            }
        })
        .collect())
}

/// Builds a table from the catalog alone (for the snapshot).
pub async fn load(client: &Client, config: &CdcConfig, oid: u32) -> Result<Arc<Table>, PgError> {
    let (schema, name) = table_row(client, oid).await?;
    let catalog = catalog_columns(client, oid).await?;
    let primary_key = primary_key(client, oid).await?;
    Ok(Arc::new(build(config, schema, name, catalog, &primary_key)))
}

/// Builds a table from a Relation message, completed by the catalog (nullability, enum labels,
/// primary key). Columns the catalog no longer has (dropped since) keep the message's type.
pub async fn from_relation(
    client: &Client,
    config: &CdcConfig,
    relation: &Relation,
) -> Result<Arc<Table>, PgError> {
    let catalog = catalog_columns(client, relation.id).await?;
    let primary_key = primary_key(client, relation.id).await?;
    let columns = relation
        .columns
        .iter()
        .map(|c| {
            catalog
                .iter()
                .find(|k| k.name == c.name)
                .cloned()
                .unwrap_or_else(|| CatalogColumn {
                    name: c.name.clone(),
                    info: TypeInfo {
                        oid: c.type_oid,
                        modifier: c.type_modifier,
                        typtype: b'b',
                        element: None,
                        enum_values: None,
                        name: None,
                    },
                    not_null: false,
                    default_expr: None,
                })
        })
        .collect();
    Ok(Arc::new(build(
        config,
        relation.schema.clone(),
        relation.table.clone(),
        columns,
        &primary_key,
    )))
}

async fn table_row(client: &Client, oid: u32) -> Result<(String, String), PgError> {
    let row = client
        .query_opt(TABLE_SQL, &[&oid])
        .await
        .map_err(PgError::postgres(format!("reading table {oid}")))?
        .ok_or_else(|| PgError::State(format!("table {oid} no longer exists")))?;
    Ok((row.get(0), row.get(1)))
}

async fn primary_key(client: &Client, oid: u32) -> Result<Vec<String>, PgError> {
    let rows = client
        .query(PRIMARY_KEY_SQL, &[&oid])
        .await
        .map_err(PgError::postgres(format!(
            "reading the primary key of table {oid}"
        )))?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

fn build(
    config: &CdcConfig,
    schema: String,
    name: String,
    catalog: Vec<CatalogColumn>,
    primary_key: &[String],
) -> Table {
    let columns: Vec<Column> = catalog
        .into_iter()
        .map(|c| {
            let kind = kind_of(&c.info);
            let optional = !c.not_null;
            Column {
                // Debezium leaves out the columns of types it does not map.
                kept: config.filters.column(&schema, &name, &c.name)
                    && (kind != Kind::Unknown || config.include_unknown),
                default: c
                    .default_expr
                    .as_deref()
                    .map(|e| default_value(&kind, &config.modes, e)),
                kind,
                optional,
                name: c.name,
            }
        })
        .collect();
    let key_names: Vec<String> = match config.key_columns_for(&schema, &name) {
        Some(names) => names.to_vec(),
        None => primary_key.to_vec(),
    };
    let key: Vec<usize> = key_names
        .iter()
        .filter_map(|k| columns.iter().position(|c| &c.name == k))
        .collect();
    let topic = config.table_topic(&schema, &name);
    let full_name = format!("{}.{schema}.{name}", config.prefix);
    let modes = &config.modes;
    let key_schema = (!key.is_empty()).then(|| {
        let fields: Vec<Value> = key
            .iter()
            .map(|&i| {
                let c = &columns[i];
                field_schema(&c.kind, modes, c.optional, c.default.as_ref(), &c.name)
            })
            .collect();
        Schema::new(json!({"type": "struct", "fields": fields, "optional": false, "name": format!("{full_name}.Key")}))
    });
    let row_fields: Vec<Value> = columns
        .iter()
        .filter(|c| c.kept)
        .map(|c| field_schema(&c.kind, modes, c.optional, c.default.as_ref(), &c.name))
        .collect();
    let row = |field: &str| {
        json!({"type": "struct", "fields": row_fields, "optional": true,
               "name": format!("{full_name}.Value"), "field": field})
    };
    let envelope_schema = json!({
        "type": "struct",
        "fields": [
            row("before"),
            row("after"),
            super::event::source_schema(),
            super::event::transaction_block_schema(),
            {"type": "string", "optional": false, "field": "op"},
            {"type": "int64", "optional": true, "field": "ts_ms"},
            {"type": "int64", "optional": true, "field": "ts_us"},
            {"type": "int64", "optional": true, "field": "ts_ns"},
        ],
        "optional": false,
        "name": format!("{full_name}.Envelope"),
        "version": 2,
    });
    let envelope_schema = Schema::new(envelope_schema);
    Table {
        schema,
        name,
        topic,
        columns,
        key,
        key_schema,
        envelope_schema,
    }
}
