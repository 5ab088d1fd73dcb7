//! A datum's shape, checked before apache-avro decodes it.
//!
//! apache-avro reserves room for as many array or map items as a block's count says (up to
//! 512 M, tens of gigabytes for a map) and recurses as deep as the data nests, so one hostile
//! record in a topic could abort the process: an allocation failure (found by the Avro fuzz
//! target, `src/fuzz/avro.rs`) or a stack overflow. This walk allocates nothing: every block
//! count must fit in the bytes left (an item takes at least one byte, except items of a type
//! that encodes to nothing, of which a datum may hold [`MAX_EMPTY_ITEMS`]), every length must,
//! and values may nest [`MAX_DEPTH`] deep.

use apache_avro::Schema as AvroSchema;

use super::schema::{Names, resolve};

/// Deepest nesting of arrays, maps, records and unions in a datum.
pub const MAX_DEPTH: usize = 128;

/// Most items of a type that encodes to no bytes (null, an empty record) in one datum.
pub const MAX_EMPTY_ITEMS: usize = 1 << 20;

/// Checks that `bytes` can be decoded under `schema` without allocating more than the bytes
/// justify; the error says what is out of bounds.
pub(super) fn check(schema: &AvroSchema, names: &Names, bytes: &[u8]) -> Result<(), OutOfBounds> {
    let mut walk = Walk {
        bytes,
        at: 0,
        names,
        empty_items: 0,
    };
    walk.value(schema, 0)
}

/// What in a datum is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(super) struct OutOfBounds(String);

fn fail<T>(message: String) -> Result<T, OutOfBounds> {
    Err(OutOfBounds(message))
}

struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    names: &'a Names,
    empty_items: usize,
}

impl Walk<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn skip(&mut self, n: usize, what: &str) -> Result<(), OutOfBounds> {
        if n > self.left() {
            return fail(format!(
                "{what} of {n} bytes, but only {} bytes are left",
                self.left()
            ));
        }
        self.at += n;
        Ok(())
    }

    /// A zig-zag varint.
    fn long(&mut self) -> Result<i64, OutOfBounds> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.bytes.get(self.at) else {
                return fail("the data ends inside a number".to_owned());
            };
            self.at += 1;
            if shift == 63 && byte > 1 {
                return fail("a number longer than 64 bits".to_owned());
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        fail("a number longer than 64 bits".to_owned())
    }

    fn length(&mut self, what: &str) -> Result<(), OutOfBounds> {
        let n = self.long()?;
        let n = usize::try_from(n).or_else(|_| fail(format!("{what} of negative length {n}")))?;
        self.skip(n, what)
    }

    fn value(&mut self, schema: &AvroSchema, depth: usize) -> Result<(), OutOfBounds> {
        if depth > MAX_DEPTH {
            return fail(format!("values nested deeper than {MAX_DEPTH} levels"));
        }
        match resolve(schema, self.names) {
            AvroSchema::Null => Ok(()),
            AvroSchema::Boolean => self.skip(1, "a boolean"),
            AvroSchema::Int
            | AvroSchema::Long
            | AvroSchema::Date
            | AvroSchema::TimeMillis
            | AvroSchema::TimeMicros
            | AvroSchema::TimestampMillis
            | AvroSchema::TimestampMicros
            | AvroSchema::TimestampNanos
            | AvroSchema::LocalTimestampMillis
            | AvroSchema::LocalTimestampMicros
            | AvroSchema::LocalTimestampNanos
            | AvroSchema::Enum(_) => self.long().map(drop),
            AvroSchema::Float => self.skip(4, "a float"),
            AvroSchema::Double => self.skip(8, "a double"),
            AvroSchema::Bytes | AvroSchema::BigDecimal => self.length("bytes"),
            AvroSchema::String | AvroSchema::Uuid => self.length("a string"),
            AvroSchema::Fixed(fixed) => self.skip(fixed.size, "a fixed"),
            AvroSchema::Duration => self.skip(12, "a duration"),
            AvroSchema::Decimal(decimal) => self.value(&decimal.inner, depth + 1),
            AvroSchema::Union(union) => {
                let index = self.long()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| OutOfBounds(format!("union branch {index} does not exist")))?;
                self.value(variant, depth + 1)
            }
            AvroSchema::Record(record) => record
                .fields
                .iter()
                .try_for_each(|field| self.value(&field.schema, depth + 1)),
            AvroSchema::Array(array) => self.blocks(&array.items, false, depth),
            AvroSchema::Map(map) => self.blocks(&map.types, true, depth),
            // A reference to a type this schema does not define: apache-avro reports it.
            AvroSchema::Ref { .. } => Ok(()),
        }
    }

    /// An array's or map's blocks: a count (negative: followed by the block's byte size), the
    /// items, until a count of zero.
    fn blocks(&mut self, items: &AvroSchema, keyed: bool, depth: usize) -> Result<(), OutOfBounds> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            let count = usize::try_from(count.unsigned_abs())
                .or_else(|_| fail(format!("a block of {count} items")))?;
            if count > self.left() {
                // Items of a type that encodes to nothing take no bytes: a bounded number.
                let empty = !keyed && self.encodes_to_nothing(items, 0);
                if !empty || self.empty_items + count > MAX_EMPTY_ITEMS {
                    return fail(format!("a block of {count} items in {} bytes", self.left()));
                }
                self.empty_items += count;
            }
            for _ in 0..count {
                if keyed {
                    self.length("a map key")?;
                }
                self.value(items, depth + 1)?;
            }
        }
    }

    /// Whether values of `schema` are encoded as zero bytes (null, a record of such fields).
    fn encodes_to_nothing(&self, schema: &AvroSchema, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match resolve(schema, self.names) {
            AvroSchema::Null => true,
            AvroSchema::Fixed(fixed) => fixed.size == 0,
            AvroSchema::Record(record) => record
                .fields
                .iter()
                .all(|f| self.encodes_to_nothing(&f.schema, depth + 1)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::converters::avro::schema::named_types;

    fn checked(schema: &str, bytes: &[u8]) -> Result<(), OutOfBounds> {
        let schema = AvroSchema::parse_str(schema).unwrap();
        check(&schema, &named_types(&schema), bytes)
    }

    #[test]
    fn counts_lengths_and_depth_must_fit_the_bytes() {
        // The fuzz target's find: a map block claiming 2,717,908,993 entries in a few bytes.
        let huge_map = [0x82, 0xa4, 0xe7, 0x9f, 0x14, 0x02, b'k', 0x00];
        let error = checked(r#"{"type": "map", "values": "long"}"#, &huge_map)
            .unwrap_err()
            .to_string();
        assert!(error.contains("a block of"), "{error}");
        // A correct map: one entry "k" -> 0.
        assert!(
            checked(
                r#"{"type": "map", "values": "long"}"#,
                &[0x02, 0x02, b'k', 0x00, 0x00]
            )
            .is_ok()
        );
        // Many nulls in few bytes are fine, up to a bound.
        assert!(
            checked(
                r#"{"type": "array", "items": "null"}"#,
                &[0x80, 0x89, 0x7a, 0x00]
            )
            .is_ok()
        );
        assert!(
            checked(
                r#"{"type": "array", "items": "null"}"#,
                &[0xfe, 0xff, 0xff, 0xff, 0x0f, 0x00]
            )
            .is_err()
        );
        // A string longer than the data.
        assert!(checked(r#""string""#, &[0x10, b'a']).is_err());
        // A recursive record nested past the limit.
        let node = r#"{"type": "record", "name": "Node", "fields": [
            {"name": "next", "type": ["null", "Node"]}]}"#;
        let mut deep = vec![0x02; 2 * MAX_DEPTH];
        deep.push(0x00);
        let error = checked(node, &deep).unwrap_err().to_string();
        assert!(error.contains("nested deeper"), "{error}");
        assert!(checked(node, &[0x02, 0x02, 0x00]).is_ok());
    }
}
