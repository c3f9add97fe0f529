//! The command names of docs/PROTOCOL.md ("The commands"): the one
//! registry the agent's dispatcher, journal and the platform use.

/// A command this protocol knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Name {
    Sh,
    Reboot,
    Agent,
    Report,
    Iad,
    S20,
    Goip,
    Vpn,
    Sms,
    Upgrade,
}

/// Every command, in the order of the protocol's table.
pub const ALL: &[Name] = &[Name::Sh, Name::Reboot, Name::Agent, Name::Report, Name::Iad, Name::S20, Name::Goip, Name::Vpn, Name::Sms, Name::Upgrade];

/// Every command's name, as on the wire.
pub const KNOWN: &[&str] = &["sh", "reboot", "agent", "report", "iad", "s20", "goip", "vpn", "sms", "upgrade"];

impl Name {
    pub fn as_str(self) -> &'static str {
        match self {
            Name::Sh => "sh",
            Name::Reboot => "reboot",
            Name::Agent => "agent",
            Name::Report => "report",
            Name::Iad => "iad",
            Name::S20 => "s20",
            Name::Goip => "goip",
            Name::Vpn => "vpn",
            Name::Sms => "sms",
            Name::Upgrade => "upgrade",
        }
    }

    pub fn parse(s: &str) -> Option<Name> {
        ALL.iter().copied().find(|n| n.as_str() == s)
    }

    /// A command addressed to a LAN device (`get`/`set` with a body for it).
    pub fn is_device(self) -> bool {
        matches!(self, Name::Iad | Name::S20 | Name::Goip | Name::Vpn)
    }

    /// Changes nothing, on the router or on a LAN device, with this
    /// `method`: `agent get`, `report`, and a LAN device's `get` (the
    /// agent's device parsers refuse under `get` whatever would change the
    /// device). Such a command is not journalled: run again after a crash
    /// or a redelivery it changes nothing, and a retry gets a fresh answer
    /// (docs/PROTOCOL.md, "Commands": exactly once).
    pub fn is_read_only(self, method: &str) -> bool {
        match self {
            Name::Agent => matches!(method, "get" | ""),
            Name::Report => true,
            Name::Iad | Name::S20 | Name::Goip | Name::Vpn => method == "get",
            Name::Sh | Name::Reboot | Name::Sms | Name::Upgrade => false,
        }
    }

    /// Its effect may take the agent or the router down: it answers first
    /// and its journal entry is settled after a restart by its stored answer.
    pub fn answers_first(self) -> bool {
        matches!(self, Name::Reboot | Name::Upgrade)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_registry() {
        assert_eq!(ALL.len(), KNOWN.len());
        for (n, s) in ALL.iter().zip(KNOWN) {
            assert_eq!(n.as_str(), *s);
            assert_eq!(Name::parse(s), Some(*n));
        }
        assert_eq!(Name::parse("SH"), None);
        assert!(Name::Vpn.is_device() && !Name::Sh.is_device());
    }

    #[test]
    fn only_reads_are_read_only() {
        assert!(Name::Agent.is_read_only("get") && Name::Agent.is_read_only(""));
        assert!(!Name::Agent.is_read_only("set"));
        assert!(Name::Report.is_read_only(""));
        for d in [Name::Iad, Name::S20, Name::Goip, Name::Vpn] {
            assert!(d.is_read_only("get") && !d.is_read_only("set") && !d.is_read_only(""), "{d}");
        }
        for n in [Name::Sh, Name::Reboot, Name::Sms, Name::Upgrade] {
            assert!(!n.is_read_only("") && !n.is_read_only("get"), "{n}");
        }
    }
}
