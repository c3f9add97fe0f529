//! MQTT topic filters: validation and matching (`+` one level, `#` the rest).

/// A route's topic: a valid MQTT topic filter, not a `$` system topic and
/// not a shared-subscription form.
pub fn valid_filter(f: &str) -> bool {
    if f.is_empty() || f.len() > 256 || f.starts_with('$') || f.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = f.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i + 1 == levels.len(),
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// Whether some topic under `{prefix}/cmd/` matches `filter` (a route on
/// it would receive the commands, and the secrets in them).
pub fn can_match_cmd(filter: &str, prefix: &str) -> bool {
    let mut f = filter.split('/');
    for want in prefix.split('/').chain(std::iter::once("cmd")) {
        match f.next() {
            Some("#") => return true,
            Some("+") => {}
            Some(l) if l == want => {}
            _ => return false,
        }
    }
    // `{p}/cmd` itself is not a command topic; anything below it is.
    f.next().is_some()
}

/// A command topic (`{prefix}/cmd/…`).
pub fn is_cmd(topic: &str, prefix: &str) -> bool {
    dma_wire::topics::is_cmd(topic, prefix)
}

pub fn matches(filter: &str, topic: &str) -> bool {
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(l)) if f == l => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert!(valid_filter("dma/event"));
        assert!(valid_filter("dma/+/cmd"));
        assert!(valid_filter("dma/#"));
        assert!(!valid_filter("dma/#/x"));
        assert!(!valid_filter("dma/ev+"));
        assert!(!valid_filter("$SYS/#"));
        assert!(!valid_filter(""));
        assert!(matches("dma/event", "dma/event"));
        assert!(!matches("dma/event", "dma/events"));
        assert!(matches("dma/+", "dma/sys"));
        assert!(!matches("dma/+", "dma/state/X"));
        assert!(matches("dma/#", "dma/state/X"));
        assert!(!matches("dma/state/+", "dma/state"));
        for f in ["#", "dma/#", "dma/cmd/#", "dma/cmd/+", "+/cmd/+", "+/+/X1", "dma/+/#", "dma/cmd/SN1"] {
            assert!(can_match_cmd(f, "dma"), "{f}");
        }
        for f in ["dma/event", "dma/+", "dma/cmd", "dma/sys/#", "other/cmd/+", "+/event/#", "dma/state/+"] {
            assert!(!can_match_cmd(f, "dma"), "{f}");
        }
        assert!(can_match_cmd("a/+/cmd/#", "a/b"));
        assert!(is_cmd("dma/cmd/SN1", "dma") && !is_cmd("dma/cmdx/SN1", "dma") && !is_cmd("dma/event", "dma"));
    }
}
