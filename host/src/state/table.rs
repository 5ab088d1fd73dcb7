//! A typed table of a [`StateStore`] with a bounded write-back cache: hot entries are kept
//! decoded in memory; when the cache holds more than its limit, a quarter of it is evicted —
//! entries not used since the last eviction first (the CLOCK policy), changed ones spilled to
//! the store (non-durably). A checkpoint writes what is still changed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use smallvec::SmallVec;

use super::{Change, Changes, StateError, StateStore, Writer};

/// Live entries of a page, and the key the next page starts at (`None`: the last page).
pub type Page<T> = (Vec<(Vec<u8>, T)>, Option<Vec<u8>>);

/// A cached entry: `None` once deleted (until the deletion is written).
#[derive(Debug)]
pub struct Entry<T> {
    value: Option<T>,
    dirty: bool,
    /// Read or changed since the last eviction: kept by the next one.
    used: bool,
}

/// A cached entry's key, held inline up to 24 bytes (a window end and a short group, e.g.
/// `["user12345"]`): a lookup compares keys within the map's nodes instead of following a
/// pointer per comparison, which with 100,000 cached windows was a cache miss each, and the
/// entry saves the key's own allocation.
type CacheKey = SmallVec<[u8; 24]>;

/// See the module documentation. Keys are bytes ordered as the store orders them, so range
/// scans (windows by end time) see cache and store as one table.
#[derive(Debug)]
pub struct StateTable<T> {
    name: String,
    cache: BTreeMap<CacheKey, Entry<T>>,
    max_entries: usize,
    /// Where a cache miss needs no read (see [`Self::cached_unless_stored`]).
    residency: Option<Residency>,
    /// Prefixes removed since the last checkpoint ([`Self::remove_prefix`]).
    removed: Vec<Vec<u8>>,
    /// What a snapshot not yet written holds: the store lacks it.
    unwritten: Option<Unwritten>,
}

#[derive(Debug)]
struct Unwritten {
    generation: u64,
    changes: Arc<Changes>,
    removed: Vec<Vec<u8>>,
}

/// Which keys of a table may be in the store but not in the cache: any key under a prefix the
/// store held entries under when the table was opened, and the keys evicted since. For any
/// other key the cache holds the entry if there is one, so a key missing from it is absent.
/// A window's first record (one in three records, with 100,000 users clicking thrice per
/// window) used to read the store to find nothing; and once one entry under a window's end was
/// evicted, every new group of that window did.
#[derive(Debug)]
struct Residency {
    prefix_len: usize,
    stored: BTreeSet<Vec<u8>>,
    /// Hashes of the keys evicted, by prefix (a collision only costs a read).
    evicted: BTreeMap<Vec<u8>, HashSet<u64>>,
}

impl Residency {
    fn may_be_stored(&self, key: &[u8]) -> bool {
        let Some(prefix) = key.get(..self.prefix_len) else {
            return true;
        };
        self.stored.contains(prefix)
            || self
                .evicted
                .get(prefix)
                .is_some_and(|keys| keys.contains(&key_hash(key)))
    }

    fn evicted(&mut self, key: &[u8]) {
        let Some(prefix) = key.get(..self.prefix_len) else {
            return;
        };
        let hash = key_hash(key);
        match self.evicted.get_mut(prefix) {
            Some(keys) => {
                keys.insert(hash);
            }
            None => {
                self.evicted.insert(prefix.to_vec(), HashSet::from([hash]));
            }
        }
    }
}

fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

impl<T: Serialize + DeserializeOwned> StateTable<T> {
    pub fn new(name: impl Into<String>, max_entries: usize) -> Self {
        Self {
            name: name.into(),
            cache: BTreeMap::new(),
            max_entries: max_entries.max(1),
            residency: None,
            removed: Vec::new(),
            unwritten: None,
        }
    }

    /// Declares that the store holds entries of this table only under `stored` prefixes (of
    /// `prefix_len` bytes, e.g. window ends), as of its last checkpoint: a lookup under any
    /// other prefix is answered from the cache until an entry under it is evicted.
    pub fn cached_unless_stored(
        mut self,
        prefix_len: usize,
        stored: impl IntoIterator<Item = Vec<u8>>,
    ) -> Self {
        self.residency = Some(Residency {
            prefix_len,
            stored: stored.into_iter().collect(),
            evicted: BTreeMap::new(),
        });
        self
    }

    /// Notes that no entry is left under `prefix` (every one deleted, the deletions written
    /// or cached): lookups under it need no read again.
    pub fn forget_prefix(&mut self, prefix: &[u8]) {
        if let Some(r) = self.residency.as_mut() {
            r.stored.remove(prefix);
            r.evicted.remove(prefix);
        }
    }

    /// Whether the store may hold `key` while the cache does not.
    fn may_be_stored(&self, key: &[u8]) -> bool {
        self.residency.as_ref().is_none_or(|r| r.may_be_stored(key))
    }

    fn decode(&self, store: &StateStore, bytes: &[u8]) -> Result<T, StateError> {
        postcard::from_bytes(bytes).map_err(|e| StateError {
            path: store.path.clone(),
            message: format!("table {}: undecodable entry: {e}", self.name),
        })
    }

    /// What the last snapshot holds, while it is not written.
    fn unwritten(&self, store: &StateStore) -> Option<&Unwritten> {
        self.unwritten
            .as_ref()
            .filter(|u| !store.written(u.generation))
    }

    /// Whether `key` is under a prefix removed while the store still holds it (`unwritten`:
    /// the last snapshot, if it is not written).
    fn removed(&self, unwritten: Option<&Unwritten>, key: &[u8]) -> bool {
        let under = |prefixes: &[Vec<u8>]| prefixes.iter().any(|p| key.starts_with(p));
        under(&self.removed) || unwritten.is_some_and(|u| under(&u.removed))
    }

    /// The stored bytes of `key`: the unwritten snapshot's, else the store's.
    fn read(&mut self, store: &StateStore, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let unwritten = self.unwritten(store);
        if self.removed(unwritten, key) {
            return Ok(None);
        }
        match unwritten {
            Some(u) => {
                if let Ok(i) = u.changes.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                    return Ok(u.changes[i].1.clone());
                }
            }
            None => self.unwritten = None,
        }
        store.get(&self.name, key)
    }

    /// Deletes every entry whose key starts with `prefix` (a closed window end's groups): from
    /// the cache now, from the store at the next checkpoint, in one range deletion rather than
    /// one deletion per entry. No entry may be created under `prefix` afterwards: one spilled
    /// before that checkpoint would be deleted with the rest.
    pub fn remove_prefix(&mut self, prefix: &[u8]) {
        let mut under = self.cache.split_off(prefix);
        if let Some(end) = prefix_end(prefix) {
            let mut after = under.split_off(end.as_slice());
            self.cache.append(&mut after);
        }
        drop(under);
        self.removed.push(prefix.to_vec());
        self.forget_prefix(prefix);
    }

    fn load(&mut self, store: &StateStore, key: &[u8]) -> Result<(), StateError> {
        if !self.cache.contains_key(key) {
            let entry = self.fetch(store, key)?;
            self.cache.insert(CacheKey::from_slice(key), entry);
        }
        Ok(())
    }

    /// The entry of a key the cache lacks, from the store (or nothing, when the store cannot
    /// have it).
    fn fetch(&mut self, store: &StateStore, key: &[u8]) -> Result<Entry<T>, StateError> {
        let stored = match self.may_be_stored(key) {
            true => self.read(store, key)?,
            false => None,
        };
        let value = match stored {
            Some(bytes) => Some(self.decode(store, &bytes)?),
            None => None,
        };
        Ok(Entry {
            value,
            dirty: false,
            used: true,
        })
    }

    /// Changes the entry at `key` with `change` (created with `init` if absent) and marks it
    /// changed. One cache search when the entry is cached (most calls), where
    /// [`Self::upsert`], which returns the entry, takes two.
    pub fn update<R>(
        &mut self,
        store: &StateStore,
        key: &[u8],
        init: impl FnOnce() -> T,
        change: impl FnOnce(&mut T) -> R,
    ) -> Result<R, StateError> {
        let touch = |entry: &mut Entry<T>| {
            entry.dirty = true;
            entry.used = true;
            change(entry.value.get_or_insert_with(init))
        };
        if let Some(entry) = self.cache.get_mut(key) {
            return Ok(touch(entry));
        }
        let entry = self.fetch(store, key)?;
        Ok(touch(
            self.cache.entry(CacheKey::from_slice(key)).or_insert(entry),
        ))
    }

    /// The entry at `key` for reading.
    pub fn get(&mut self, store: &StateStore, key: &[u8]) -> Result<Option<&T>, StateError> {
        self.load(store, key)?;
        let entry = self
            .cache
            .get_mut(key)
            .expect("load leaves the key in the cache");
        entry.used = true;
        Ok(entry.value.as_ref())
    }

    /// The entry at `key` for changing (marked changed), created with `init` if absent.
    pub fn upsert(
        &mut self,
        store: &StateStore,
        key: &[u8],
        init: impl FnOnce() -> T,
    ) -> Result<&mut T, StateError> {
        self.load(store, key)?;
        let entry = self
            .cache
            .get_mut(key)
            .expect("load leaves the key in the cache");
        entry.dirty = true;
        entry.used = true;
        Ok(entry.value.get_or_insert_with(init))
    }

    /// Deletes the entry at `key`.
    pub fn remove(&mut self, key: &[u8]) {
        self.cache.insert(
            CacheKey::from_slice(key),
            Entry {
                value: None,
                dirty: true,
                used: true,
            },
        );
    }

    /// Live entries with `from <= key < to`, in key order, from cache and store together.
    /// They are read, not cached: scans (closing windows) touch entries once.
    pub fn entries_in(
        &self,
        store: &StateStore,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, T)>, StateError>
    where
        T: Clone,
    {
        Ok(self.page(store, from, to, usize::MAX)?.0)
    }

    /// Live entries from `from`, reading at most `limit` stored ones (plus cached ones in the
    /// same span), for scans too large to hold at once; and where the next page starts, if
    /// there is one.
    pub fn page(
        &self,
        store: &StateStore,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<T>, StateError>
    where
        T: Clone,
    {
        if to.is_some_and(|t| from >= t) {
            return Ok((Vec::new(), None));
        }
        // Decided before reading the store: a snapshot written in between is in both.
        let unwritten = self.unwritten(store);
        let stored = store.range_limited(&self.name, from, to, limit)?;
        // Cached entries past the last stored one belong to the next page.
        let last = (stored.len() >= limit)
            .then(|| stored.keys().next_back().cloned())
            .flatten();
        let to = last
            .as_deref()
            .map(|l| (l, true))
            .or(to.map(|t| (t, false)));
        let upper = match to {
            Some((k, true)) => Bound::Included(k),
            Some((k, false)) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut merged: BTreeMap<Vec<u8>, Option<T>> = BTreeMap::new();
        for (k, bytes) in stored {
            if self.removed(unwritten, &k) {
                continue;
            }
            let value = match bytes {
                Some(b) => Some(self.decode(store, &b)?),
                None => None,
            };
            merged.insert(k, value);
        }
        if let Some(u) = unwritten {
            let start = u.changes.partition_point(|(k, _)| k.as_slice() < from);
            for (k, bytes) in &u.changes[start..] {
                let within = match upper {
                    Bound::Included(u) => k.as_slice() <= u,
                    Bound::Excluded(u) => k.as_slice() < u,
                    Bound::Unbounded => true,
                };
                if !within {
                    break;
                }
                let value = match bytes {
                    Some(b) => Some(self.decode(store, b)?),
                    None => None,
                };
                merged.insert(k.clone(), value);
            }
        }
        for (k, e) in self.cache.range::<[u8], _>((Bound::Included(from), upper)) {
            merged.insert(k.to_vec(), e.value.clone());
        }
        let mut live: Vec<(Vec<u8>, T)> = merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        // Cached entries the store lacks may crowd the span: a page is `limit` entries.
        let last = match live.len() > limit {
            true => {
                live.truncate(limit);
                live.last().map(|(k, _)| k.clone())
            }
            false => last,
        };
        let next = last.map(|mut k| {
            k.push(0);
            k
        });
        Ok((live, next))
    }

    /// [`Self::entries_in`] of the keys starting with `prefix`.
    pub fn entries_with_prefix(
        &self,
        store: &StateStore,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, StateError>
    where
        T: Clone,
    {
        let end = prefix_end(prefix);
        self.entries_in(store, prefix, end.as_deref())
    }

    /// [`Self::page`] within the keys starting with `prefix`. When the store holds no entry
    /// under `prefix` that the cache lacks (see [`Self::cached_unless_stored`]), the page comes
    /// from the cache alone: closing a window end that was never evicted read all of its
    /// windows back from the store only to find the cached ones newer.
    pub fn page_with_prefix(
        &self,
        store: &StateStore,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Page<T>, StateError>
    where
        T: Clone,
    {
        let end = prefix_end(prefix);
        if !self.prefix_may_be_stored(prefix) {
            return Ok(self.cached_page(from, end.as_deref(), limit));
        }
        self.page(store, from, end.as_deref(), limit)
    }

    /// Whether the store may hold an entry under `prefix` (of the residency's length) that
    /// the cache lacks.
    fn prefix_may_be_stored(&self, prefix: &[u8]) -> bool {
        self.residency.as_ref().is_none_or(|r| {
            prefix.len() != r.prefix_len
                || r.stored.contains(prefix)
                || r.evicted.get(prefix).is_some_and(|keys| !keys.is_empty())
        })
    }

    /// A page of the live cached entries with `from <= key < to`.
    fn cached_page(&self, from: &[u8], to: Option<&[u8]>, limit: usize) -> Page<T>
    where
        T: Clone,
    {
        let upper = to.map_or(Bound::Unbounded, Bound::Excluded);
        let mut live = self
            .cache
            .range::<[u8], _>((Bound::Included(from), upper))
            .filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)));
        let page: Vec<(Vec<u8>, T)> = live
            .by_ref()
            .take(limit)
            .map(|(k, v)| (k.to_vec(), v.clone()))
            .collect();
        let next = live.next().map(|(k, _)| k.to_vec());
        (page, next)
    }

    /// Calls `f` on every live entry in memory; entries it reports changed (`true`) are
    /// written at the next checkpoint.
    pub fn for_each_cached(&mut self, mut f: impl FnMut(&mut T) -> bool) {
        for entry in self.cache.values_mut() {
            if let Some(value) = entry.value.as_mut()
                && f(value)
            {
                entry.dirty = true;
            }
        }
    }

    /// Entries decoded in memory.
    pub fn resident(&self) -> usize {
        self.cache.len()
    }

    /// Encodes a changed entry for writing: its bytes, or `None` for a deletion.
    fn encode(
        &self,
        path: &std::path::Path,
        value: Option<&T>,
    ) -> Result<Option<Vec<u8>>, StateError> {
        value
            .map(|v| {
                postcard::to_allocvec(v).map_err(|err| StateError {
                    path: path.to_owned(),
                    message: format!("table {}: cannot encode an entry: {err}", self.name),
                })
            })
            .transpose()
    }

    /// Writes changed entries into `writer`'s transaction, or its snapshot, and marks them
    /// written. A snapshot's changes answer reads until it is written.
    pub fn write_changes(&mut self, writer: &mut Writer<'_>) -> Result<(), StateError> {
        let mut changes: Changes = Vec::new();
        for (k, e) in self.cache.iter().filter(|(_, e)| e.dirty) {
            changes.push((k.to_vec(), self.encode(writer.path(), e.value.as_ref())?));
        }
        let changes = Arc::new(changes);
        let removed = std::mem::take(&mut self.removed);
        writer.remove_prefixes(&self.name, &removed)?;
        if let Some(generation) = writer.snapshot() {
            // The cache drops deletions and, later, evicts clean entries: what this snapshot
            // holds must stay readable until the store has it. (A snapshot is only taken once
            // the previous one is written, so this one covers every unwritten change.)
            self.unwritten = Some(Unwritten {
                generation,
                changes: Arc::clone(&changes),
                removed,
            });
        }
        writer.apply_changes(&self.name, changes)?;
        self.cache.retain(|_, e| e.value.is_some());
        for e in self.cache.values_mut() {
            e.dirty = false;
        }
        Ok(())
    }

    /// Past the cache limit: evicts a quarter of the cache, spilling (non-durably) what the
    /// evicted entries changed. Unchanged entries go first; entries used since the last
    /// eviction get a second chance; among the others the smallest keys go first, which for windows keyed by their end are
    /// the oldest. Emptying the whole cache instead made a working set slightly larger than
    /// the limit reload every entry after each spill.
    pub fn bound_memory(&mut self, store: &StateStore) -> Result<(), StateError> {
        if self.cache.len() <= self.max_entries {
            return Ok(());
        }
        let target = self.max_entries - self.max_entries / 4;
        let mut excess = self.cache.len() - target;
        let mut evicted: Vec<CacheKey> = Vec::with_capacity(excess);
        // First the unused entries the store already holds (written by a checkpoint): they
        // leave without a spill, which would also wait for a checkpoint being written. Then
        // two sweeps: the first clears the marks of the entries it passes, so the second
        // (needed only when nearly all were used) always finds enough.
        for sweep in 0..3 {
            for (k, e) in self.cache.iter_mut() {
                if excess == 0 {
                    break;
                }
                let keep = match sweep {
                    0 => e.used || e.dirty,
                    _ => std::mem::take(&mut e.used),
                };
                if keep {
                    continue;
                }
                evicted.push(k.clone());
                excess -= 1;
                // Marked so a later sweep does not pick it again.
                e.used = true;
            }
        }
        let mut changes: Vec<Change> = Vec::new();
        for key in &evicted {
            if let Some(e) = self.cache.get(key).filter(|e| e.dirty) {
                changes.push((key.to_vec(), self.encode(store.path(), e.value.as_ref())?));
            }
        }
        if !changes.is_empty() {
            let name = &self.name;
            store.spill(|w| {
                w.apply(
                    name,
                    changes.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
                )
            })?;
        }
        for key in &evicted {
            self.cache.remove(key);
            if let Some(r) = self.residency.as_mut() {
                r.evicted(key);
            }
        }
        Ok(())
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_entries_read_back_and_a_crash_keeps_the_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = StateStore::open(&path).unwrap();
            let mut t: StateTable<u64> = StateTable::new("t", 2);
            *t.upsert(&store, b"a", || 0).unwrap() += 1;
            let mut offsets = SourceOffsets::default();
            offsets.insert(serde_json::json!({"p": 0}), serde_json::json!({"o": 1}));
            store.checkpoint(&offsets, |w| t.write_changes(w)).unwrap();
            for k in [b"b", b"c", b"d"] {
                *t.upsert(&store, k, || 10).unwrap() += 1;
                t.bound_memory(&store).unwrap();
            }
            assert!(t.resident() <= 2);
            assert_eq!(t.get(&store, b"b").unwrap(), Some(&11));
            assert_eq!(t.entries_with_prefix(&store, b"").unwrap().len(), 4);
            t.remove(b"a");
            assert_eq!(
                t.entries_in(&store, b"a", Some(b"c")).unwrap(),
                [(b"b".to_vec(), 11)]
            );
            // No checkpoint after the spills: dropped as a crash would drop them.
        }
        let store = StateStore::open(&path).unwrap();
        let mut t: StateTable<u64> = StateTable::new("t", 2);
        assert_eq!(
            t.entries_with_prefix(&store, b"").unwrap(),
            [(b"a".to_vec(), 1)]
        );
        assert_eq!(t.get(&store, b"a").unwrap(), Some(&1));
        let offsets = store.checkpointed_offsets().unwrap().unwrap();
        assert_eq!(
            offsets.get(&serde_json::json!({"p": 0})),
            Some(&serde_json::json!({"o": 1}))
        );
    }

    use crate::api::offsets::SourceOffsets;

    #[test]
    fn a_prefix_never_evicted_is_answered_from_the_cache() {
        let store = StateStore::in_memory().unwrap();
        let mut t: StateTable<u64> = StateTable::new("t", 2);
        *t.upsert(&store, b"a1", || 5).unwrap() += 0;
        store
            .checkpoint(&SourceOffsets::default(), |w| t.write_changes(w))
            .unwrap();
        // Told the store holds nothing under "a": the stored entry is not read.
        let mut t: StateTable<u64> = StateTable::new("t", 2).cached_unless_stored(1, []);
        assert_eq!(t.get(&store, b"a1").unwrap(), None);
        let mut t: StateTable<u64> =
            StateTable::new("t", 2).cached_unless_stored(1, [b"a".to_vec()]);
        assert_eq!(t.get(&store, b"a1").unwrap(), Some(&5));
        // Entries evicted under "b" are read back from the store.
        let keys: [&[u8]; 4] = [b"b1", b"b2", b"b3", b"b4"];
        for k in keys {
            *t.upsert(&store, k, || 1).unwrap() += 1;
            t.bound_memory(&store).unwrap();
        }
        assert!(t.resident() <= 2);
        for k in keys {
            assert_eq!(t.get(&store, k).unwrap(), Some(&2), "{k:?}");
        }
    }

    #[test]
    fn a_point_read_sees_every_commit_before_it() {
        let store = StateStore::in_memory().unwrap();
        // The first read opens the read transaction later reads share, and finds no table.
        assert_eq!(store.get("t", b"k").unwrap(), None);
        store
            .spill(|w| w.apply("t", [(&b"k"[..], Some(&b"\x01"[..]))]))
            .unwrap();
        assert_eq!(store.get("t", b"k").unwrap(), Some(vec![1]));
        store
            .checkpoint(&SourceOffsets::default(), |w| {
                w.apply("t", [(&b"k"[..], Some(&b"\x02"[..]))])
            })
            .unwrap();
        assert_eq!(store.get("t", b"k").unwrap(), Some(vec![2]));
    }

    /// Every live entry under `prefix`, read a page of `limit` at a time.
    fn paged(t: &StateTable<u64>, store: &StateStore, prefix: &[u8], limit: usize) -> Vec<u64> {
        let (mut all, mut from) = (Vec::new(), prefix.to_vec());
        loop {
            let (page, next) = t.page_with_prefix(store, prefix, &from, limit).unwrap();
            assert!(page.len() <= limit);
            all.extend(page.into_iter().map(|(_, v)| v));
            match next {
                Some(next) => from = next,
                None => return all,
            }
        }
    }

    #[test]
    fn pages_of_a_prefix_come_from_the_cache_until_one_entry_is_evicted() {
        let store = StateStore::in_memory().unwrap();
        let mut t: StateTable<u64> = StateTable::new("t", 8).cached_unless_stored(1, []);
        for (i, k) in [b"a1", b"a2", b"a3", b"a4", b"b1"].into_iter().enumerate() {
            *t.upsert(&store, k, || i as u64).unwrap() += 10;
        }
        store
            .checkpoint(&SourceOffsets::default(), |w| t.write_changes(w))
            .unwrap();
        // Changed since the checkpoint: newer than the store, one deleted, one new.
        *t.upsert(&store, b"a1", || 0).unwrap() = 100;
        t.remove(b"a3");
        *t.upsert(&store, b"a5", || 15).unwrap() += 0;
        // Proof that the cache answers: an entry only the store has under "a" is not seen.
        store
            .checkpoint(&SourceOffsets::default(), |w| {
                w.apply("t", [(&b"a0"[..], Some(&b"\x07"[..]))])
            })
            .unwrap();
        assert_eq!(paged(&t, &store, b"a", 2), [100, 11, 13, 15]);
        assert_eq!(paged(&t, &store, b"b", 2), [14]);
        // Once an entry under "a" is evicted, its pages read the store too.
        let mut small: StateTable<u64> = StateTable::new("t", 1).cached_unless_stored(1, []);
        for k in [b"a1", b"a2"] {
            *small.upsert(&store, k, || 1).unwrap() += 0;
            small.bound_memory(&store).unwrap();
        }
        assert_eq!(paged(&small, &store, b"a", 2), [7, 1, 1, 12, 13]);
    }

    #[test]
    fn a_snapshot_answers_reads_until_written_and_spills_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let mut t: StateTable<u64> = StateTable::new("t", 2);
        *t.upsert(&store, b"a", || 1).unwrap() += 0;
        *t.upsert(&store, b"b", || 2).unwrap() += 0;
        store
            .checkpoint(&SourceOffsets::default(), |w| t.write_changes(w))
            .unwrap();
        // Changed since: a 1 → 5, b deleted, c new.
        *t.upsert(&store, b"a", || 0).unwrap() = 5;
        t.remove(b"b");
        *t.upsert(&store, b"c", || 3).unwrap() += 0;
        let snapshot = store.snapshot(|w| t.write_changes(w)).unwrap();
        // The store still has the checkpoint before; the table answers from the snapshot,
        // also for entries the cache lets go of (clean, so evicted without a spill).
        assert_eq!(
            store.get("t", b"a").unwrap(),
            Some(postcard::to_allocvec(&1u64).unwrap())
        );
        assert_eq!(t.get(&store, b"x").unwrap(), None);
        t.bound_memory(&store).unwrap();
        assert!(t.resident() <= 2);
        assert_eq!(t.get(&store, b"a").unwrap(), Some(&5));
        assert_eq!(t.get(&store, b"b").unwrap(), None);
        assert_eq!(
            t.entries_with_prefix(&store, b"").unwrap(),
            [(b"a".to_vec(), 5), (b"c".to_vec(), 3)]
        );
        // A spill written now would be folded under the snapshot's older changes: it waits.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spiller = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                store
                    .spill(|w| w.apply("t", [(&b"d"[..], Some(&b"\x07"[..]))]))
                    .unwrap();
                done_tx.send(()).unwrap();
            })
        };
        assert!(
            done_rx
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the spill waits for the snapshot"
        );
        store
            .write_snapshot(&SourceOffsets::default(), snapshot)
            .unwrap();
        done_rx.recv().unwrap();
        spiller.join().unwrap();
        assert_eq!(
            store.get("t", b"a").unwrap(),
            Some(postcard::to_allocvec(&5u64).unwrap())
        );
        assert_eq!(store.get("t", b"b").unwrap(), None);
        assert_eq!(t.get(&store, b"a").unwrap(), Some(&5));
    }

    #[test]
    fn a_snapshot_never_written_is_lost_as_a_crash_loses_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = StateStore::open(&path).unwrap();
            let mut t: StateTable<u64> = StateTable::new("t", 10);
            *t.upsert(&store, b"a", || 1).unwrap() += 0;
            store
                .checkpoint(&SourceOffsets::default(), |w| t.write_changes(w))
                .unwrap();
            *t.upsert(&store, b"a", || 0).unwrap() = 2;
            let snapshot = store.snapshot(|w| t.write_changes(w)).unwrap();
            drop(snapshot);
            // Dropped, it no longer holds spills back.
            store.spill(|w| w.apply("t", [(&b"z"[..], None)])).unwrap();
        }
        let store = StateStore::open(&path).unwrap();
        let mut t: StateTable<u64> = StateTable::new("t", 10);
        assert_eq!(t.get(&store, b"a").unwrap(), Some(&1));
    }

    #[test]
    fn a_removed_prefix_is_gone_at_once_and_from_the_store_at_the_checkpoint() {
        let store = StateStore::in_memory().unwrap();
        let mut t: StateTable<u64> = StateTable::new("t", 10);
        for k in [&b"a1"[..], b"a2", b"b1"] {
            *t.upsert(&store, k, || 1).unwrap() += 0;
        }
        store
            .checkpoint(&SourceOffsets::default(), |w| t.write_changes(w))
            .unwrap();
        t.remove_prefix(b"a");
        assert_eq!(t.get(&store, b"a1").unwrap(), None);
        assert_eq!(
            t.entries_with_prefix(&store, b"").unwrap(),
            [(b"b1".to_vec(), 1)]
        );
        // Through a snapshot: still removed while it is written, and in the store after.
        let snapshot = store.snapshot(|w| t.write_changes(w)).unwrap();
        assert!(store.get("t", b"a2").unwrap().is_some());
        assert_eq!(t.entries_with_prefix(&store, b"a").unwrap(), []);
        store
            .write_snapshot(&SourceOffsets::default(), snapshot)
            .unwrap();
        assert_eq!(store.get("t", b"a1").unwrap(), None);
        assert_eq!(store.get("t", b"a2").unwrap(), None);
        assert!(store.get("t", b"b1").unwrap().is_some());
        // And in line.
        t.remove_prefix(b"b");
        store
            .checkpoint(&SourceOffsets::default(), |w| t.write_changes(w))
            .unwrap();
        assert_eq!(store.get("t", b"b1").unwrap(), None);
    }

    #[test]
    fn a_page_holds_at_most_its_limit_even_of_cached_entries() {
        let store = StateStore::in_memory().unwrap();
        let mut t: StateTable<u64> = StateTable::new("t", 100);
        for k in 0..30u8 {
            *t.upsert(&store, &[b'k', k], || 1).unwrap() += 0;
        }
        let (mut seen, mut from) = (0, b"k".to_vec());
        loop {
            let (page, next) = t.page_with_prefix(&store, b"k", &from, 10).unwrap();
            assert!(page.len() <= 10, "{} entries", page.len());
            seen += page.len();
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(seen, 30);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255]), None);
    }
}
