//! Orders that Debezium's output inherits from Java's collections, reproduced so that events
//! come out byte for byte as Debezium writes them.

/// The order in which Java's `HashMap<String, _>` iterates `entries` (given in insertion order):
/// Debezium keeps a transaction's per-table counts in one (its END event lists them so), and
/// an hstore's entries (its JSON lists them so).
/// Buckets by `String.hashCode` spread as `HashMap.hash` does, at the capacity the map has
/// grown to (16, doubled past a load of 0.75); insertion order within a bucket. (A bucket of 8
/// or more, which makes Java grow or treeify, needs 8 tables colliding: not followed.)
pub fn hash_map_order<T>(entries: &[(String, T)]) -> Vec<&(String, T)> {
    let mut capacity = 16usize;
    while entries.len() > capacity / 4 * 3 {
        capacity *= 2;
    }
    let bucket = |name: &str| {
        let hash = name.encode_utf16().fold(0u32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(u32::from(unit))
        });
        ((hash ^ (hash >> 16)) as usize) & (capacity - 1)
    };
    let mut ordered: Vec<&(String, T)> = entries.iter().collect();
    // Stable: insertion order within a bucket.
    ordered.sort_by_key(|(name, _)| bucket(name));
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_events_list_tables_as_a_java_hash_map_iterates_them() {
        // "public.items" falls in bucket 0 of 16, "public.orders" and "public.customers" in
        // bucket 5 (String.hashCode, spread): Debezium 3.6 lists items first whichever came
        // first, and keeps the order of the two sharing a bucket (host/testdata/cdc/txmeta.jsonl,
        // golden/all-records.jsonl).
        let names = |entries: &[(String, u64)]| -> Vec<String> {
            hash_map_order(entries)
                .into_iter()
                .map(|(n, _)| n.clone())
                .collect()
        };
        let seen = |list: &[&str]| -> Vec<(String, u64)> {
            list.iter().map(|n| ((*n).to_owned(), 1)).collect()
        };
        assert_eq!(
            names(&seen(&["public.orders", "public.items"])),
            ["public.items", "public.orders"]
        );
        assert_eq!(
            names(&seen(&["public.orders", "public.customers"])),
            ["public.orders", "public.customers"]
        );
        assert_eq!(
            names(&seen(&["public.customers", "public.orders"])),
            ["public.customers", "public.orders"]
        );
    }
}
