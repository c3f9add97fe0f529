//! Topic names of PROTOCOL.md, in either layout (`topic_layout`).

use crate::config::model::TopicLayout;

/// All topics for one agent (`{p}` prefix, `{sn}` serial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub cmd: String,
    pub resp: String,
    pub state: String,
    pub sys: String,
    pub procs: String,
    pub versions: String,
    pub periph: String,
    pub event: String,
}

/// The kinds of message a device publishes besides `state` (which is
/// per device in both layouts), as topic parts under the prefix.
pub const DEVICE_KINDS: &[&str] = &["resp/cmd", "sys", "procs", "versions", "periph", "event"];

impl Topics {
    pub fn new(prefix: &str, sn: &str, layout: TopicLayout) -> Topics {
        // v2: the serial ends every topic the device writes, so a broker
        // ACL (`pattern write dma/+/%u`) can pin it to its own.
        let own = |kind: &str| match layout {
            TopicLayout::Device => format!("{prefix}/{kind}/{sn}"),
            TopicLayout::Shared => format!("{prefix}/{kind}"),
        };
        Topics {
            cmd: format!("{prefix}/cmd/{sn}"),
            resp: own("resp/cmd"),
            state: format!("{prefix}/state/{sn}"),
            sys: own("sys"),
            procs: own("procs"),
            versions: own("versions"),
            periph: own("periph"),
            event: own("event"),
        }
    }
}

/// Subscription filters that see one kind of device message (`kind` as in
/// [`DEVICE_KINDS`]) in both layouts: of device `sn`, or of all devices.
pub fn filters(prefix: &str, kind: &str, sn: Option<&str>) -> [String; 2] {
    [format!("{prefix}/{kind}"), format!("{prefix}/{kind}/{}", sn.unwrap_or("+"))]
}

/// The kind of a device message topic (`sys`, `resp/cmd`, …) in either
/// layout, or None when `topic` is not one.
pub fn kind_of<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    DEVICE_KINDS.iter().find_map(|k| {
        let tail = rest.strip_prefix(k)?;
        (tail.is_empty() || tail.strip_prefix('/').is_some_and(|sn| !sn.is_empty() && !sn.contains('/'))).then(|| &rest[..k.len()])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_layout_ends_every_written_topic_with_the_serial() {
        let t = Topics::new("dma", "AA01", TopicLayout::Device);
        assert_eq!(t.cmd, "dma/cmd/AA01");
        assert_eq!(t.resp, "dma/resp/cmd/AA01");
        assert_eq!(t.state, "dma/state/AA01");
        assert_eq!(t.sys, "dma/sys/AA01");
        assert_eq!(t.procs, "dma/procs/AA01");
        assert_eq!(t.versions, "dma/versions/AA01");
        assert_eq!(t.periph, "dma/periph/AA01");
        assert_eq!(t.event, "dma/event/AA01");
    }

    #[test]
    fn shared_layout_is_v1() {
        let t = Topics::new("p", "AA01", TopicLayout::Shared);
        assert_eq!((t.cmd.as_str(), t.resp.as_str(), t.state.as_str()), ("p/cmd/AA01", "p/resp/cmd", "p/state/AA01"));
        assert_eq!([t.sys, t.procs, t.versions, t.periph, t.event], ["p/sys", "p/procs", "p/versions", "p/periph", "p/event"]);
    }

    #[test]
    fn kinds_are_recognised_in_both_layouts() {
        assert_eq!(kind_of("dma", "dma/sys"), Some("sys"));
        assert_eq!(kind_of("dma", "dma/sys/AA01"), Some("sys"));
        assert_eq!(kind_of("dma", "dma/resp/cmd/AA01"), Some("resp/cmd"));
        assert_eq!(kind_of("dma", "dma/cmd/AA01"), None);
        assert_eq!(kind_of("dma", "dma/state/AA01"), None);
        assert_eq!(kind_of("dma", "dma/sys/a/b"), None);
        assert_eq!(kind_of("dma", "dma/system"), None);
    }
}
