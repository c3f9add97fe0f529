//! Command ids in the seed's form: the UTC date and a per-day sequence,
//! `YYYYMMDD` followed by ten digits (201811260000000001). They fit in 63
//! bits, so SQLite's INTEGER and PostgreSQL's BIGINT hold them exactly.

/// Sequence numbers per day: 10 digits.
pub const SEQ_SPAN: u64 = 10_000_000_000;

pub fn make(day: u64, seq: u64) -> Option<u64> {
    if seq == 0 || seq >= SEQ_SPAN {
        return None;
    }
    day.checked_mul(SEQ_SPAN)?.checked_add(seq)
}

/// An id from the API or a device: a JSON number or a decimal string.
pub fn parse(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_form() {
        assert_eq!(make(20181126, 1), Some(201811260000000001));
        assert_eq!(make(20181126, 0), None);
        assert_eq!(make(20181126, SEQ_SPAN), None);
        assert!(make(99991231, SEQ_SPAN - 1).is_some_and(|v| v <= i64::MAX as u64));
        assert_eq!(parse(&serde_json::json!(201811260000000001u64)), Some(201811260000000001));
        assert_eq!(parse(&serde_json::json!("20181203000000004")), Some(20181203000000004));
        assert_eq!(parse(&serde_json::json!(-1)), None);
    }
}
