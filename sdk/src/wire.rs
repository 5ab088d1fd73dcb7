//! The batch wire form shared with the host (see `wit/headwater-plugin.wit`): one byte arena
//! plus eight `u32` per record (offset and length of topic, key, value, headers).

/// Length marking a null field.
pub const NULL: u32 = u32::MAX;
/// Set on an output offset that points into the input arena.
pub const INPUT: u32 = 0x8000_0000;
/// `u32`s per record in `spans`.
pub const SPAN_WIDTH: usize = 8;
/// Timestamp marking "no timestamp".
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// The slice a span names, `None` when null or out of bounds.
pub(crate) fn slice(arena: &[u8], offset: u32, len: u32) -> Option<&[u8]> {
    if len == NULL {
        return None;
    }
    let start = offset as usize;
    arena.get(start..start.checked_add(len as usize)?)
}

/// Iterates over an encoded headers block; stops at the first malformed entry.
pub(crate) fn headers(mut block: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    std::iter::from_fn(move || {
        let key = take(&mut block)??;
        let value = take(&mut block)?;
        Some((key, value))
    })
}

/// Reads one length-prefixed field; `Some(None)` is a null value, `None` the end.
fn take<'a>(block: &mut &'a [u8]) -> Option<Option<&'a [u8]>> {
    let (len, rest) = block.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len);
    if len == NULL {
        *block = rest;
        return Some(None);
    }
    let len = len as usize;
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    *block = rest;
    Some(Some(value))
}

/// Appends one header entry to an encoded headers block.
pub(crate) fn put_header(block: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    block.extend_from_slice(&(key.len() as u32).to_le_bytes());
    block.extend_from_slice(key);
    match value {
        Some(v) => {
            block.extend_from_slice(&(v.len() as u32).to_le_bytes());
            block.extend_from_slice(v);
        }
        None => block.extend_from_slice(&NULL.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_with_null_values() {
        let mut block = Vec::new();
        put_header(&mut block, b"a", Some(b"1"));
        put_header(&mut block, b"b", None);
        let got: Vec<_> = headers(&block).collect();
        assert_eq!(got, vec![(&b"a"[..], Some(&b"1"[..])), (&b"b"[..], None)]);
    }

    #[test]
    fn truncated_headers_stop_cleanly() {
        let mut block = Vec::new();
        put_header(&mut block, b"key", Some(b"value"));
        block.truncate(block.len() - 2);
        assert_eq!(headers(&block).count(), 0);
    }
}
