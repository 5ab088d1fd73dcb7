//! How deeply a JSON text nests, measured on its bytes: serde_json refuses to parse into a tree
//! what nests 128 levels or more, while skipping a value (`IgnoredAny`, `RawValue`) has no such
//! limit. A stage that reads a text without building its tree checks this so that it accepts
//! exactly what the stages that do build one can read.

/// The deepest nesting serde_json parses into a tree (its recursion limit: 128 levels fail).
pub const MAX_DEPTH: usize = 127;

/// Whether `text` (valid JSON or not) nests deeper than [`MAX_DEPTH`] levels.
pub fn too_deep(text: &[u8]) -> bool {
    // Most texts open fewer containers than the limit at all: one fast count settles them.
    if memchr::memchr2_iter(b'[', b'{', text).count() <= MAX_DEPTH {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}
