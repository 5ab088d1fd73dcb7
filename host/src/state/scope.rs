//! One state partition as a whole — the tables and metadata its steps keep under
//! `<name>@<scope>` (see `crate::api::transform::ChainContext::state_name`): what a changelog
//! copies out of the store, and writes back into another host's.

use redb::ReadableTable;

use super::{Changes, META, OFFSETS, SPILL, StateError, StateStore, VALUE, table};
use crate::api::offsets::SourceOffsets;

/// The state partition a table or metadata name belongs to: the text after its `@`, up to the
/// next `:` (`window:w@clicks-1:sessions` → `clicks-1`). `None`: the connector's own.
pub fn scope_of_name(name: &str) -> Option<&str> {
    let name = name.strip_suffix(SPILL).unwrap_or(name);
    let (_, rest) = name.rsplit_once('@')?;
    Some(rest.split(':').next().unwrap_or(rest))
}

/// One change of a state partition, in the order it is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum ScopeChange {
    /// An entry of a table set (`Some`) or deleted.
    Entry {
        table: String,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
    /// A step's metadata (its watermark, closes under way).
    Meta { name: String, value: Vec<u8> },
}

/// What [`StateStore::import_scope`] does before applying its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Import {
    /// The changes follow the state the store holds.
    OnTop,
    /// The scope's tables and metadata are dropped first: the changes are its whole state.
    Replace,
}

impl StateStore {
    /// Entries spilled since the last checkpoint, by table (values `None`: deleted). A
    /// checkpoint folds them into their tables: they belong to it as much as its snapshot.
    pub fn spilled(&self) -> Result<Vec<(String, Changes)>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for name in self.tables()?.into_iter().filter(|n| n.ends_with(SPILL)) {
            let t = match txn.open_table(table(&name)) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(e) => return Err(self.error(e)),
            };
            let mut changes = Vec::new();
            for item in t.iter().map_err(|e| self.error(e))? {
                let (k, v) = item.map_err(|e| self.error(e))?;
                let tagged = v.value();
                let value = (tagged.first() == Some(&VALUE)).then(|| tagged[1..].to_vec());
                changes.push((k.value().to_vec(), value));
            }
            out.push((name[..name.len() - SPILL.len()].to_owned(), changes));
        }
        Ok(out)
    }

    /// The whole state of `scope` as the last checkpoint holds it: every entry of its tables,
    /// then its metadata.
    pub fn export_scope(&self, scope: &str) -> Result<Vec<ScopeChange>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for name in self.tables()? {
            if name.ends_with(SPILL) || scope_of_name(&name) != Some(scope) {
                continue;
            }
            let t = txn.open_table(table(&name)).map_err(|e| self.error(e))?;
            for item in t.iter().map_err(|e| self.error(e))? {
                let (k, v) = item.map_err(|e| self.error(e))?;
                out.push(ScopeChange::Entry {
                    table: name.clone(),
                    key: k.value().to_vec(),
                    value: Some(v.value().to_vec()),
                });
            }
        }
        match txn.open_table(META) {
            Ok(meta) => {
                for item in meta.iter().map_err(|e| self.error(e))? {
                    let (k, v) = item.map_err(|e| self.error(e))?;
                    if scope_of_name(k.value()) == Some(scope) {
                        out.push(ScopeChange::Meta {
                            name: k.value().to_owned(),
                            value: v.value().to_vec(),
                        });
                    }
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(self.error(e)),
        }
        Ok(out)
    }

    /// Writes `changes` of `scope` in one durable commit, with `positions` applied to the
    /// checkpointed offsets (the positions of the input the changes hold; those of other
    /// inputs stay as the last checkpoint wrote them). Spills of other scopes stay spilled:
    /// they belong to the next checkpoint.
    pub fn import_scope(
        &self,
        scope: &str,
        import: Import,
        changes: impl IntoIterator<Item = ScopeChange>,
        positions: impl FnOnce(&mut SourceOffsets),
    ) -> Result<(), StateError> {
        let err = |e: redb::Error| self.error(e);
        let mut txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(redb::Durability::Immediate);
        {
            if import == Import::Replace {
                for name in self.tables()? {
                    if scope_of_name(&name) == Some(scope) {
                        txn.delete_table(table(&name)).map_err(|e| err(e.into()))?;
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            if import == Import::Replace {
                let mut names = Vec::new();
                for item in meta.iter().map_err(|e| err(e.into()))? {
                    let (k, _) = item.map_err(|e| err(e.into()))?;
                    if scope_of_name(k.value()) == Some(scope) {
                        names.push(k.value().to_owned());
                    }
                }
                for name in names {
                    meta.remove(name.as_str()).map_err(|e| err(e.into()))?;
                }
            }
            for change in changes {
                match change {
                    ScopeChange::Entry {
                        table: name,
                        key,
                        value,
                    } => {
                        let mut t = txn.open_table(table(&name)).map_err(|e| err(e.into()))?;
                        match value {
                            Some(v) => t.insert(key.as_slice(), v.as_slice()).map(drop),
                            None => t.remove(key.as_slice()).map(drop),
                        }
                        .map_err(|e| err(e.into()))?;
                    }
                    ScopeChange::Meta { name, value } => {
                        meta.insert(name.as_str(), value.as_slice())
                            .map_err(|e| err(e.into()))?;
                    }
                }
            }
            let mut offsets = match meta.get(OFFSETS).map_err(|e| err(e.into()))? {
                Some(bytes) => {
                    let value: serde_json::Value =
                        serde_json::from_slice(bytes.value()).map_err(|e| self.error(e))?;
                    SourceOffsets::from_json(&value)
                        .ok_or_else(|| self.error("the checkpointed offsets are corrupt"))?
                }
                None => SourceOffsets::default(),
            };
            positions(&mut offsets);
            meta.insert(OFFSETS, offsets.to_json().to_string().as_bytes())
                .map_err(|e| err(e.into()))?;
        }
        self.commit_txn(txn)
    }
}

impl StateStore {
    /// Makes the state kept under scope `from` the state of scope `to`, in one durable commit:
    /// `to`'s tables and metadata are dropped, and `from`'s renamed to `to`'s names (no entry
    /// is copied). Returns the entries moved.
    pub fn promote_scope(&self, from: &str, to: &str) -> Result<u64, StateError> {
        let err = |e: redb::Error| self.error(e);
        let tables = self.tables()?;
        let mut txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(redb::Durability::Immediate);
        let mut moved = 0;
        {
            for name in &tables {
                if scope_of_name(name) == Some(to) {
                    txn.delete_table(table(name)).map_err(|e| err(e.into()))?;
                }
            }
            for name in &tables {
                if scope_of_name(name) != Some(from) {
                    continue;
                }
                let renamed = rename_scope(name, from, to);
                moved += txn
                    .open_table(table(name))
                    .and_then(|t| Ok(redb::ReadableTableMetadata::len(&t)?))
                    .map_err(|e| err(e.into()))?;
                txn.rename_table(table(name), table(&renamed))
                    .map_err(|e| err(e.into()))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let mut drop_names = Vec::new();
            let mut moves = Vec::new();
            for item in meta.iter().map_err(|e| err(e.into()))? {
                let (k, v) = item.map_err(|e| err(e.into()))?;
                match scope_of_name(k.value()) {
                    Some(s) if s == to => drop_names.push(k.value().to_owned()),
                    Some(s) if s == from => {
                        moves.push((k.value().to_owned(), v.value().to_vec()));
                    }
                    _ => {}
                }
            }
            for name in drop_names {
                meta.remove(name.as_str()).map_err(|e| err(e.into()))?;
            }
            for (name, value) in moves {
                meta.remove(name.as_str()).map_err(|e| err(e.into()))?;
                meta.insert(rename_scope(&name, from, to).as_str(), value.as_slice())
                    .map_err(|e| err(e.into()))?;
            }
        }
        self.commit_txn(txn)?;
        Ok(moved)
    }
}

/// `name` (of a table or metadata entry of scope `from`) with scope `to` instead.
pub fn rename_scope(name: &str, from: &str, to: &str) -> String {
    match name.rsplit_once('@') {
        Some((head, rest)) if rest.starts_with(from) => {
            format!("{head}@{to}{}", &rest[from.len()..])
        }
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_belongs_to_the_scope_after_its_at() {
        assert_eq!(scope_of_name("window:w@clicks-1"), Some("clicks-1"));
        assert_eq!(
            scope_of_name("window:w@clicks-1:sessions"),
            Some("clicks-1")
        );
        assert_eq!(
            scope_of_name("window:w@clicks-1:progress.v2"),
            Some("clicks-1")
        );
        assert_eq!(scope_of_name("window:w@clicks-1~spill"), Some("clicks-1"));
        assert_eq!(scope_of_name("window:w"), None);
        assert_eq!(scope_of_name("sink.state.layout"), None);
    }

    #[test]
    fn a_promoted_scope_replaces_the_other_under_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        store
            .checkpoint(&SourceOffsets::default(), |w| {
                w.apply("window:w@t-1", [(b"old".as_slice(), Some(b"1".as_slice()))])?;
                w.put_meta("window:w@t-1:progress.v2", b"old")?;
                w.apply(
                    "window:w@copy~t-1",
                    [(b"new".as_slice(), Some(b"2".as_slice()))],
                )?;
                w.apply(
                    "window:w@copy~t-1:sessions",
                    [(b"s".as_slice(), Some(b"3".as_slice()))],
                )?;
                w.put_meta("window:w@copy~t-1:progress.v2", b"new")?;
                w.apply(
                    "window:w@t-2",
                    [(b"other".as_slice(), Some(b"4".as_slice()))],
                )
            })
            .unwrap();
        assert_eq!(store.promote_scope("copy~t-1", "t-1").unwrap(), 2);
        assert_eq!(store.get("window:w@t-1", b"old").unwrap(), None);
        assert_eq!(
            store.get("window:w@t-1", b"new").unwrap(),
            Some(b"2".to_vec())
        );
        assert_eq!(
            store.get("window:w@t-1:sessions", b"s").unwrap(),
            Some(b"3".to_vec())
        );
        assert_eq!(
            store.meta("window:w@t-1:progress.v2").unwrap(),
            Some(b"new".to_vec())
        );
        assert_eq!(store.export_scope("copy~t-1").unwrap(), Vec::new());
        assert_eq!(
            store.get("window:w@t-2", b"other").unwrap(),
            Some(b"4".to_vec()),
            "other scopes stay"
        );
        assert_eq!(
            rename_scope("changelog@copy~t-1", "copy~t-1", "t-1"),
            "changelog@t-1"
        );
    }

    #[test]
    fn a_scope_exported_and_imported_elsewhere_is_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let from = StateStore::open(&dir.path().join("a.redb")).unwrap();
        from.checkpoint(&SourceOffsets::default(), |w| {
            for name in ["window:w@t-1", "window:w@t-1:sessions", "window:w@t-2"] {
                w.apply(name, [(b"k".as_slice(), Some(b"v".as_slice()))])?;
                w.put_meta(&format!("{name}:progress.v2"), name.as_bytes())?;
            }
            Ok(())
        })
        .unwrap();
        let exported = from.export_scope("t-1").unwrap();
        assert_eq!(exported.len(), 4, "{exported:?}");

        let to = StateStore::open(&dir.path().join("b.redb")).unwrap();
        // Stale state of the scope there is replaced; another scope's is kept.
        to.checkpoint(&SourceOffsets::default(), |w| {
            w.apply("window:w@t-1", [(b"old".as_slice(), Some(b"x".as_slice()))])?;
            w.apply("window:w@t-3", [(b"k".as_slice(), Some(b"3".as_slice()))])
        })
        .unwrap();
        let partition = serde_json::json!({"topic": "t", "partition": 1});
        to.import_scope("t-1", Import::Replace, exported.clone(), |offsets| {
            offsets.insert(partition.clone(), serde_json::json!({"offset": 41}))
        })
        .unwrap();
        assert_eq!(to.export_scope("t-1").unwrap(), exported);
        assert_eq!(to.get("window:w@t-1", b"old").unwrap(), None);
        assert_eq!(to.get("window:w@t-3", b"k").unwrap(), Some(b"3".to_vec()));
        let offsets = to.checkpointed_offsets().unwrap().unwrap();
        assert_eq!(offsets.get(&partition).unwrap()["offset"], 41);

        // On top: a deletion and a new value.
        to.import_scope(
            "t-1",
            Import::OnTop,
            [
                ScopeChange::Entry {
                    table: "window:w@t-1".into(),
                    key: b"k".to_vec(),
                    value: None,
                },
                ScopeChange::Entry {
                    table: "window:w@t-1".into(),
                    key: b"n".to_vec(),
                    value: Some(b"1".to_vec()),
                },
            ],
            |_| {},
        )
        .unwrap();
        assert_eq!(to.get("window:w@t-1", b"k").unwrap(), None);
        assert_eq!(to.get("window:w@t-1", b"n").unwrap(), Some(b"1".to_vec()));
        assert!(to.get("window:w@t-1:sessions", b"k").unwrap().is_some());
    }
}
