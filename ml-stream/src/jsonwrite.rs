//! Writing JSON text straight into a byte buffer, without building a value tree: the hot path
//! of record serialization.

/// Appends `s` as a JSON string (quoted and escaped).
pub(crate) fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(escape);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Appends a float the way serde_json writes it (the same shortest round-trip formatter); `null` when it is
/// not finite, as JSON has no NaN or infinity.
pub(crate) fn write_f64(buf: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        buf.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        buf.extend_from_slice(b"null");
    }
}

/// Appends an integer.
pub(crate) fn write_int(buf: &mut Vec<u8>, i: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_parses_back_to_the_same_values() {
        for s in [
            "plain",
            "quote \" and \\ back",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}",
            "é ✓",
        ] {
            let mut buf = Vec::new();
            write_str(&mut buf, s);
            assert_eq!(serde_json::from_slice::<String>(&buf).unwrap(), s);
        }
        for x in [0.0, -1.5, 0.1, 1e-300, 123456789.125, f64::MAX] {
            let mut buf = Vec::new();
            write_f64(&mut buf, x);
            assert_eq!(serde_json::from_slice::<f64>(&buf).unwrap(), x);
            assert_eq!(buf, serde_json::to_vec(&x).unwrap(), "same text as serde_json");
        }
        let mut buf = Vec::new();
        write_f64(&mut buf, f64::NAN);
        write_int(&mut buf, -42i64);
        assert_eq!(buf, b"null-42");
    }
}
