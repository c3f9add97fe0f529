//! Topic names of docs/PROTOCOL.md ("Topics"), in either layout.

/// Where a device publishes what it writes besides `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// v2: the serial ends every topic the device writes, so a broker ACL
    /// (`pattern write dma/+/%u`) can pin a device to its own.
    #[default]
    Device,
    /// v1 (the seed's console): shared topics without the serial.
    Shared,
}

/// All topics of one device (`{p}` prefix, `{sn}` serial).
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

/// Topic part of the answers.
pub const RESP: &str = "resp/cmd";
/// Topic part of the commands (`{p}/cmd/{sn}`, both layouts).
pub const CMD: &str = "cmd";
/// Topic part of the birth and will (`{p}/state/{sn}`, both layouts).
pub const STATE: &str = "state";
/// The kinds of message a device publishes besides `state` (which is
/// per device in both layouts), as topic parts under the prefix.
pub const DEVICE_KINDS: &[&str] = &[RESP, "sys", "procs", "versions", "periph", "event"];

impl Topics {
    pub fn new(prefix: &str, sn: &str, layout: Layout) -> Topics {
        let own = |kind: &str| match layout {
            Layout::Device => format!("{prefix}/{kind}/{sn}"),
            Layout::Shared => format!("{prefix}/{kind}"),
        };
        Topics {
            cmd: cmd(prefix, sn),
            resp: own(RESP),
            state: state(prefix, sn),
            sys: own("sys"),
            procs: own("procs"),
            versions: own("versions"),
            periph: own("periph"),
            event: own("event"),
        }
    }
}

/// The command topic of device `sn` (the same in both layouts).
pub fn cmd(prefix: &str, sn: &str) -> String {
    format!("{prefix}/{CMD}/{sn}")
}

/// The state (birth and will) topic of device `sn` (the same in both layouts).
pub fn state(prefix: &str, sn: &str) -> String {
    format!("{prefix}/{STATE}/{sn}")
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
        let ok = tail.is_empty() || tail.strip_prefix('/').is_some_and(|sn| !sn.is_empty() && !sn.contains('/'));
        ok.then(|| rest.get(..k.len())).flatten()
    })
}

/// Is `topic` a command topic (`{prefix}/cmd/…`)?
pub fn is_cmd(topic: &str, prefix: &str) -> bool {
    topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).and_then(|r| r.strip_prefix(CMD)).and_then(|r| r.strip_prefix('/')).is_some()
}

/// The serial a device topic names in the `device` layout (`{p}/{kind}/{sn}`),
/// None in the shared layout or for another topic.
pub fn serial_of<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
    let kind = kind_of(prefix, topic)?;
    let sn = topic.get(prefix.len() + 1 + kind.len()..)?.strip_prefix('/')?;
    (!sn.is_empty()).then_some(sn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_layout_ends_every_written_topic_with_the_serial() {
        let t = Topics::new("dma", "AA01", Layout::Device);
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
        let t = Topics::new("p", "AA01", Layout::Shared);
        assert_eq!((t.cmd.as_str(), t.resp.as_str(), t.state.as_str()), ("p/cmd/AA01", "p/resp/cmd", "p/state/AA01"));
        assert_eq!([t.sys, t.procs, t.versions, t.periph, t.event], ["p/sys", "p/procs", "p/versions", "p/periph", "p/event"]);
    }

    #[test]
    fn kinds_and_serials_are_recognised_in_both_layouts() {
        assert_eq!(kind_of("dma", "dma/sys"), Some("sys"));
        assert_eq!(kind_of("dma", "dma/sys/AA01"), Some("sys"));
        assert_eq!(kind_of("dma", "dma/resp/cmd/AA01"), Some("resp/cmd"));
        assert_eq!(kind_of("dma", "dma/cmd/AA01"), None);
        assert_eq!(kind_of("dma", "dma/state/AA01"), None);
        assert_eq!(kind_of("dma", "dma/sys/a/b"), None);
        assert_eq!(kind_of("dma", "dma/system"), None);
        assert_eq!(serial_of("dma", "dma/resp/cmd/AA01"), Some("AA01"));
        assert_eq!(serial_of("dma", "dma/resp/cmd"), None);
        assert!(is_cmd("dma/cmd/SN1", "dma") && !is_cmd("dma/cmdx/SN1", "dma") && !is_cmd("dma/event", "dma"));
        assert_eq!(filters("dma", "sys", Some("X")), ["dma/sys".to_string(), "dma/sys/X".to_string()]);
    }
}
