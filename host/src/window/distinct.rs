//! The exact distinct values of `count_distinct`, kept small: a window's few values (a user's
//! two or three pages in five minutes) sit in one buffer, where a `Vec<String>` took an
//! allocation per value plus the vector's own (~150 bytes for three short pages, with 100,000
//! windows cached).

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Past this many bytes (values and their one-byte lengths) the values move to a sorted
/// `Vec<String>`: an insert into the buffer shifts its tail, cheap only while it is small.
const PACKED_MAX_BYTES: usize = 256;

/// A set of strings, sorted. Serialized as the sorted sequence of its values, as the
/// `BTreeSet<String>` and `Vec<String>` of earlier releases were: stored state reads back.
#[derive(Clone, Default)]
pub struct DistinctValues(Repr);

#[derive(Clone)]
enum Repr {
    /// Values in order, each as a length byte and its UTF-8 bytes; and how many there are.
    Packed {
        bytes: Vec<u8>,
        len: u32,
    },
    Spread(Vec<String>),
}

impl Default for Repr {
    fn default() -> Self {
        Self::Packed {
            bytes: Vec::new(),
            len: 0,
        }
    }
}

/// The values of a packed buffer, in order.
struct PackedIter<'a>(&'a [u8]);

impl<'a> Iterator for PackedIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (&n, rest) = self.0.split_first()?;
        let (value, rest) = rest.split_at(usize::from(n));
        self.0 = rest;
        // Only whole `&str`s are ever packed.
        Some(std::str::from_utf8(value).unwrap_or_default())
    }
}

impl DistinctValues {
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed { len, .. } => *len as usize,
            Repr::Spread(values) => values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (packed, spread): (&[u8], &[String]) = match &self.0 {
            Repr::Packed { bytes, .. } => (bytes, &[]),
            Repr::Spread(values) => (&[], values),
        };
        PackedIter(packed).chain(spread.iter().map(String::as_str))
    }

    /// Adds `value` unless it is there; allocates nothing when it is.
    pub fn insert(&mut self, value: &str) {
        match &mut self.0 {
            Repr::Packed { bytes, len } => {
                let mut at = 0;
                for existing in PackedIter(bytes) {
                    match existing.cmp(value) {
                        std::cmp::Ordering::Less => at += 1 + existing.len(),
                        std::cmp::Ordering::Equal => return,
                        std::cmp::Ordering::Greater => break,
                    }
                }
                match u8::try_from(value.len()) {
                    Ok(n) if bytes.len() + 1 + value.len() <= PACKED_MAX_BYTES => {
                        bytes.splice(at..at, std::iter::once(n).chain(value.bytes()));
                        *len += 1;
                    }
                    _ => {
                        self.spread();
                        self.insert(value);
                    }
                }
            }
            Repr::Spread(values) => {
                if let Err(at) = values.binary_search_by(|v| v.as_str().cmp(value)) {
                    values.insert(at, value.to_owned());
                }
            }
        }
    }

    /// Adds every value of `other`.
    pub fn extend(&mut self, other: &DistinctValues) {
        for value in other.iter() {
            self.insert(value);
        }
    }

    fn spread(&mut self) {
        if let Repr::Packed { bytes, .. } = &self.0 {
            let values = PackedIter(bytes).map(str::to_owned).collect();
            self.0 = Repr::Spread(values);
        }
    }
}

impl PartialEq for DistinctValues {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for DistinctValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for DistinctValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for value in self.iter() {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for DistinctValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Values;
        impl<'de> Visitor<'de> for Values {
            type Value = DistinctValues;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence of strings")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DistinctValues, A::Error> {
                let mut values = DistinctValues::default();
                while let Some(Text(value)) = seq.next_element::<Text<'de>>()? {
                    values.insert(&value);
                }
                Ok(values)
            }
        }
        deserializer.deserialize_seq(Values)
    }
}

/// A value read borrowed where the format allows (postcard, from the state store's bytes), so
/// nothing is allocated per value while the set stays packed. serde's own `Cow<str>` is
/// always read owned.
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[&str]) -> DistinctValues {
        let mut set = DistinctValues::default();
        for v in values {
            set.insert(v);
        }
        set
    }

    #[test]
    fn values_stay_sorted_and_unique_packed_or_spread() {
        let small = set(&["/b", "/a", "/c", "/a", ""]);
        assert_eq!(small.iter().collect::<Vec<_>>(), ["", "/a", "/b", "/c"]);
        assert!(matches!(small.0, Repr::Packed { .. }));
        // Many values, and one too long for a length byte, spread into a Vec; same answers.
        let many: Vec<String> = (0..200).rev().map(|i| format!("/page/{i:03}")).collect();
        let mut big = set(&many.iter().map(String::as_str).collect::<Vec<_>>());
        big.insert(&"x".repeat(300));
        big.insert("/page/007");
        assert!(matches!(big.0, Repr::Spread(_)));
        assert_eq!(big.len(), 201);
        let mut expected: Vec<String> = many.clone();
        expected.push("x".repeat(300));
        expected.sort();
        assert!(big.iter().eq(expected.iter().map(String::as_str)));
    }

    #[test]
    fn stored_as_the_sorted_sequence_whatever_the_form() {
        let values = ["/a", "/b", "é"];
        let packed = set(&values);
        let mut spread = packed.clone();
        spread.spread();
        let before: Vec<String> = values.map(String::from).into();
        let stored = postcard::to_allocvec(&before).unwrap();
        assert_eq!(postcard::to_allocvec(&packed).unwrap(), stored);
        assert_eq!(postcard::to_allocvec(&spread).unwrap(), stored);
        assert_eq!(packed, spread);
        let read: DistinctValues = postcard::from_bytes(&stored).unwrap();
        assert_eq!(read, packed);
        // Postcard hands the values over borrowed from the stored bytes.
        let one = postcard::to_allocvec("/a").unwrap();
        let text: Text<'_> = postcard::from_bytes(&one).unwrap();
        assert!(matches!(text.0, std::borrow::Cow::Borrowed("/a")));
        // A stored set not in order (or with repeats) is read back as a set.
        let unsorted = postcard::to_allocvec(&vec!["/b", "/a", "/b"]).unwrap();
        let read: DistinctValues = postcard::from_bytes(&unsorted).unwrap();
        assert_eq!(read, set(&["/a", "/b"]));
    }
}
