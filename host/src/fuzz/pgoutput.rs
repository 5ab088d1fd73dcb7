//! pgoutput messages as the walsender sends them: any bytes decode to a message or an error.

use bytes::Bytes;
use proptest::prelude::*;

use crate::connectors::postgres_cdc::pgoutput::decode;

/// A message tag pgoutput uses (or not), then arbitrary bytes, some of them plausible
/// lengths and counts.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let tag = prop::sample::select(b"BCORYTIUDMASEcsprbkX\0".to_vec());
    let part = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16),
        any::<u32>().prop_map(|n| n.to_be_bytes().to_vec()),
        any::<i16>().prop_map(|n| n.to_be_bytes().to_vec()),
        Just(b"public\0".to_vec()),
        Just(vec![b't', 0, 0, 0, 4, b'a', b'b', b'c', b'd']),
        Just(vec![b'n']),
        Just(vec![b'u']),
        Just(vec![b'b', 0xff, 0xff, 0xff, 0xff]),
    ];
    (tag, prop::collection::vec(part, 0..12)).prop_map(|(tag, parts)| {
        let mut bytes = vec![tag];
        bytes.extend(parts.concat());
        bytes
    })
}

/// A well-formed message: a Relation, an Insert, an Update or a Delete with tuples of text,
/// null and unchanged-TOAST columns, a Begin or a Commit.
fn valid_message() -> impl Strategy<Value = Vec<u8>> {
    let cstring = |s: &str| {
        let mut b = s.replace('\0', "").into_bytes();
        b.push(0);
        b
    };
    let column = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24).prop_map(|text| {
            let mut b = vec![b't'];
            b.extend((text.len() as i32).to_be_bytes());
            b.extend(text);
            b
        }),
        Just(vec![b'n']),
        Just(vec![b'u']),
    ];
    let tuple = prop::collection::vec(column, 0..6).prop_map(|columns| {
        let mut b = (columns.len() as i16).to_be_bytes().to_vec();
        b.extend(columns.concat());
        b
    });
    let relation = (
        any::<u32>(),
        super::tricky_string(),
        prop::collection::vec((super::tricky_string(), any::<u32>(), any::<i32>()), 0..6),
    )
        .prop_map(move |(id, table, columns)| {
            let mut b = vec![b'R'];
            b.extend(id.to_be_bytes());
            b.extend(cstring("public"));
            b.extend(cstring(&table));
            b.push(b'd');
            b.extend((columns.len() as i16).to_be_bytes());
            for (name, oid, modifier) in columns {
                b.push(1);
                b.extend(cstring(&name));
                b.extend(oid.to_be_bytes());
                b.extend(modifier.to_be_bytes());
            }
            b
        });
    let change = (
        prop::sample::select(vec![b'I', b'U', b'D']),
        any::<u32>(),
        tuple.clone(),
        tuple,
    )
        .prop_map(|(kind, id, old, new)| {
            let mut b = vec![kind];
            b.extend(id.to_be_bytes());
            match kind {
                b'I' => {
                    b.push(b'N');
                    b.extend(new);
                }
                b'U' => {
                    b.push(b'O');
                    b.extend(old);
                    b.push(b'N');
                    b.extend(new);
                }
                _ => {
                    b.push(b'K');
                    b.extend(old);
                }
            }
            b
        });
    let begin = (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(|(lsn, ts, xid)| {
        let mut b = vec![b'B'];
        b.extend(lsn.to_be_bytes());
        b.extend(ts.to_be_bytes());
        b.extend(xid.to_be_bytes());
        b
    });
    let commit = (any::<u64>(), any::<u64>(), any::<i64>()).prop_map(|(lsn, end, ts)| {
        let mut b = vec![b'C', 0];
        b.extend(lsn.to_be_bytes());
        b.extend(end.to_be_bytes());
        b.extend(ts.to_be_bytes());
        b
    });
    prop_oneof![relation, change, begin, commit]
}

/// One change to a message's bytes: a byte replaced, the end cut, bytes inserted.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(prop::sample::Index, u8),
    Cut(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        any::<prop::sample::Index>().prop_map(Mutation::Cut),
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 1..8)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    match mutation {
        Mutation::Replace(i, b) => {
            let at = i.index(bytes.len());
            bytes[at] = *b;
        }
        Mutation::Cut(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Insert(i, extra) => {
            let at = i.index(bytes.len());
            bytes.splice(at..at, extra.iter().copied());
        }
    }
    bytes
}

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn well_formed_messages_decode(bytes in valid_message()) {
        prop_assert!(decode(&Bytes::from(bytes)).is_ok());
    }

    #[test]
    fn mutated_messages_decode_or_fail_cleanly(
        bytes in valid_message(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let bytes = mutations.iter().fold(bytes, mutate);
        let _ = decode(&Bytes::from(bytes));
    }

    #[test]
    fn any_bytes_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&Bytes::from(bytes));
    }

    #[test]
    fn messages_with_scrambled_fields_decode_or_fail_cleanly(bytes in message()) {
        let _ = decode(&Bytes::from(bytes));
    }
}
