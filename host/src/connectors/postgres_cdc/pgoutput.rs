//! Decoding of the `pgoutput` logical replication messages (protocol version 1) that carry
//! rows: Relation, Type, Insert, Update, Delete, Truncate and Origin. Begin, Commit and
//! logical messages are decoded by `pgwire-replication` itself.
//!
//! Column values stay in PostgreSQL's text form, exactly as the snapshot reads them, so one
//! conversion (`types.rs`) serves both.

use bytes::Bytes;

/// A protocol violation: the message does not have the documented layout.
#[derive(Debug, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(pub String);

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key columns, or every column under FULL).
    pub identity: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A table's layout as of this point in the stream; sent before the first change to a table
/// and again after its schema changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub schema: String,
    pub table: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    /// A TOASTed value the update did not change: pgoutput does not send it.
    UnchangedToast,
    Text(Bytes),
}

pub type Tuple = Vec<Cell>;

/// A decoded row-carrying message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Relation(Relation),
    /// A user-defined type (enum, domain, ...) used by a following relation.
    Type {
        oid: u32,
        schema: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        /// The old key (`K`, replica identity DEFAULT/INDEX when the key changed) or the whole
        /// old row (`O`, replica identity FULL).
        old: Option<(OldKind, Tuple)>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        old: (OldKind, Tuple),
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// The origin of the transaction's changes (replication from another node).
    Origin {
        lsn: u64,
        name: String,
    },
    /// Begin, Commit and logical messages arrive as events of their own; anything else is
    /// ignored by its tag.
    Other(u8),
}

/// Which old tuple an update or delete carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldKind {
    /// Only the replica identity key columns are set.
    Key,
    /// The full old row (REPLICA IDENTITY FULL).
    Full,
}

struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "needs {n} bytes at {} of a {}-byte message",
                    self.at,
                    self.data.len()
                ))
            })?;
        let slice = &self.data[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// A NUL-terminated string.
    fn string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.data[self.at..];
        let len =
            memchr::memchr(0, rest).ok_or_else(|| DecodeError("unterminated string".into()))?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let n = self.i16()?;
        let mut cells = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::UnchangedToast,
                b't' | b'b' => {
                    let len = self.i32()?;
                    let len = usize::try_from(len)
                        .map_err(|_| DecodeError(format!("negative value length {len}")))?;
                    let start = self.at;
                    self.take(len)?;
                    // A slice of the message: no copy.
                    Cell::Text(self.data.slice(start..start + len))
                }
                other => {
                    return Err(DecodeError(format!(
                        "unknown tuple column kind {:?}",
                        other as char
                    )));
                }
            });
        }
        Ok(cells)
    }
}

/// Decodes one pgoutput message.
pub fn decode(data: &Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader { data, at: 0 };
    let tag = r.u8()?;
    Ok(match tag {
        b'R' => {
            let id = r.u32()?;
            let schema = r.string()?;
            let table = r.string()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8()?;
                columns.push(RelationColumn {
                    identity: flags & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                id,
                schema,
                table,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32()?,
            schema: r.string()?,
            name: r.string()?,
        },
        b'I' => {
            let relation = r.u32()?;
            expect(&mut r, b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                let which = if kind == b'K' {
                    OldKind::Key
                } else {
                    OldKind::Full
                };
                old = Some((which, r.tuple()?));
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(DecodeError(format!(
                    "update: expected 'N', found {:?}",
                    kind as char
                )));
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let which = match r.u8()? {
                b'K' => OldKind::Key,
                b'O' => OldKind::Full,
                other => {
                    return Err(DecodeError(format!(
                        "delete: expected 'K' or 'O', found {:?}",
                        other as char
                    )));
                }
            };
            Message::Delete {
                relation,
                old: (which, r.tuple()?),
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            let relations = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
            Message::Truncate { relations }
        }
        b'O' => Message::Origin {
            lsn: r.u64()?,
            name: r.string()?,
        },
        other => Message::Other(other),
    })
}

fn expect(r: &mut Reader<'_>, tag: u8) -> Result<(), DecodeError> {
    let found = r.u8()?;
    if found != tag {
        return Err(DecodeError(format!(
            "expected {:?}, found {:?}",
            tag as char, found as char
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple_bytes(cells: &[Option<&str>]) -> Vec<u8> {
        let mut out = (cells.len() as i16).to_be_bytes().to_vec();
        for cell in cells {
            match cell {
                None => out.push(b'n'),
                Some("\u{0}toast") => out.push(b'u'),
                Some(text) => {
                    out.push(b't');
                    out.extend((text.len() as i32).to_be_bytes());
                    out.extend(text.as_bytes());
                }
            }
        }
        out
    }

    #[test]
    fn relation_and_update_with_old_key() {
        let mut rel = vec![b'R'];
        rel.extend(16384u32.to_be_bytes());
        rel.extend(b"public\0customers\0d");
        rel.extend(2i16.to_be_bytes());
        rel.push(1);
        rel.extend(b"id\0");
        rel.extend(23u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        rel.push(0);
        rel.extend(b"name\0");
        rel.extend(25u32.to_be_bytes());
        rel.extend((-1i32).to_be_bytes());
        let Message::Relation(r) = decode(&Bytes::from(rel)).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(
            (r.id, r.schema.as_str(), r.table.as_str()),
            (16384, "public", "customers")
        );
        assert!(r.columns[0].identity && !r.columns[1].identity);
        assert_eq!(r.columns[1].type_oid, 25);

        let mut upd = vec![b'U'];
        upd.extend(16384u32.to_be_bytes());
        upd.push(b'K');
        upd.extend(tuple_bytes(&[Some("2"), None]));
        upd.push(b'N');
        upd.extend(tuple_bytes(&[Some("20"), Some("\u{0}toast")]));
        let Message::Update { old, new, .. } = decode(&Bytes::from(upd)).unwrap() else {
            panic!("not an update")
        };
        let (kind, old) = old.unwrap();
        assert_eq!(kind, OldKind::Key);
        assert_eq!(old, vec![Cell::Text(Bytes::from("2")), Cell::Null]);
        assert_eq!(
            new,
            vec![Cell::Text(Bytes::from("20")), Cell::UnchangedToast]
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let mut ins = vec![b'I'];
        ins.extend(1u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(1i16.to_be_bytes());
        ins.push(b't');
        ins.extend(100i32.to_be_bytes());
        ins.extend(b"short");
        let err = decode(&Bytes::from(ins)).unwrap_err();
        assert!(err.to_string().contains("needs 100 bytes"), "{err}");
        assert!(decode(&Bytes::from_static(b"R\0\0")).is_err());
    }
}
