//! GoIP port syntax: `1A` / `2B` (port and SIM slot letter), `1.01` /
//! `2.02` (port and slot number), `3` (port only), ranges `4-32`, lists
//! joined by commas, and `all` / `*`.

use std::fmt;

/// Highest port number accepted (the largest GoIP has 512 ports).
pub const MAX_PORT: u16 = 512;
/// Highest slot number accepted (letters `A`..`Z`, or `.01`..`.99`).
pub const MAX_SLOT: u16 = 99;

/// One port, optionally with its SIM slot (1-based: `A` and `.01` are 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub port: u16,
    pub slot: Option<u16>,
}

impl Port {
    pub fn new(port: u16, slot: Option<u16>) -> Port {
        Port { port, slot }
    }

    /// Parse `1A`, `1a`, `1.01`, `1.1` or `1`.
    pub fn parse(s: &str) -> Result<Port, String> {
        let s = s.trim().trim_end_matches('\0');
        let bad = || format!("bad port {s:?} (expected e.g. 1A, 1.01 or 1)");
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let port: u16 = s[..digits].parse().map_err(|_| bad())?;
        if port == 0 || port > MAX_PORT {
            return Err(format!("port {port} out of range 1-{MAX_PORT}"));
        }
        let rest = &s[digits..];
        let slot = if rest.is_empty() {
            None
        } else if let Some(num) = rest.strip_prefix('.') {
            let n: u16 = num.parse().map_err(|_| bad())?;
            if n == 0 || n > MAX_SLOT || num.len() > 2 {
                return Err(bad());
            }
            Some(n)
        } else if rest.len() == 1 && rest.as_bytes()[0].is_ascii_alphabetic() {
            Some((rest.as_bytes()[0].to_ascii_uppercase() - b'A') as u16 + 1)
        } else {
            return Err(bad());
        };
        Ok(Port { port, slot })
    }

    /// The letter form (`1A`) when the slot fits a letter, else `1.27`.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.slot {
            None => write!(f, "{}", self.port),
            Some(s) if (1..=26).contains(&s) => write!(f, "{}{}", self.port, (b'A' + (s - 1) as u8) as char),
            Some(s) => write!(f, "{}.{s:02}", self.port),
        }
    }
}

/// One element of a port list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortItem {
    One(Port),
    /// Ports `from..=to`, whole ports (no slot).
    Range(u16, u16),
}

/// A set of ports as the device's `ports` / `from` fields write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpec {
    All,
    List(Vec<PortItem>),
}

impl PortSpec {
    /// Parse `all`, `*`, or a comma list of ports and ranges.
    pub fn parse(s: &str) -> Result<PortSpec, String> {
        let s = s.trim().trim_end_matches('\0').trim();
        if s.is_empty() {
            return Err("empty port list".into());
        }
        if s == "*" || s.eq_ignore_ascii_case("all") {
            return Ok(PortSpec::All);
        }
        let mut items = Vec::new();
        for part in s.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(format!("empty element in port list {s:?}"));
            }
            if part == "*" || part.eq_ignore_ascii_case("all") {
                return Ok(PortSpec::All);
            }
            items.push(match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (Port::parse(a)?, Port::parse(b)?);
                    if a.slot.is_some() || b.slot.is_some() {
                        return Err(format!("range {part:?} must use port numbers only (e.g. 4-32)"));
                    }
                    if a.port > b.port {
                        return Err(format!("range {part:?} runs backwards"));
                    }
                    PortItem::Range(a.port, b.port)
                }
                None => PortItem::One(Port::parse(part)?),
            });
        }
        Ok(PortSpec::List(items))
    }

    /// Whether `p` is named by this spec. A spec element without a slot
    /// names every slot of its port; one with a slot names only that slot
    /// (or a port given without slot).
    pub fn contains(&self, p: Port) -> bool {
        match self {
            PortSpec::All => true,
            PortSpec::List(items) => items.iter().any(|it| match *it {
                PortItem::Range(a, b) => (a..=b).contains(&p.port),
                PortItem::One(q) => q.port == p.port && (q.slot.is_none() || p.slot.is_none() || q.slot == p.slot),
            }),
        }
    }

    /// The port numbers named, bounded by `max_ports`.
    pub fn port_numbers(&self, max_ports: u16) -> Vec<u16> {
        (1..=max_ports).filter(|&n| self.contains(Port::new(n, None))).collect()
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::All => f.write_str("all"),
            PortSpec::List(items) => {
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    match it {
                        PortItem::One(p) => write!(f, "{p}")?,
                        PortItem::Range(a, b) => write!(f, "{a}-{b}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ports() {
        assert_eq!(Port::parse("1A").unwrap(), Port::new(1, Some(1)));
        assert_eq!(Port::parse("32d").unwrap(), Port::new(32, Some(4)));
        assert_eq!(Port::parse("2.02").unwrap(), Port::new(2, Some(2)));
        assert_eq!(Port::parse("1.01").unwrap().to_string(), "1A");
        assert_eq!(Port::parse(" 7 ").unwrap(), Port::new(7, None));
        assert_eq!(Port::parse("3B\0").unwrap().label(), "3B");
        assert_eq!(Port::new(1, Some(27)).to_string(), "1.27");
        for bad in ["", "A", "0A", "1AB", "1.", "1.0", "1.100", "600", "1-2", "x1"] {
            assert!(Port::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lists_and_ranges() {
        let s = PortSpec::parse("1A, 2B, 3C, 4-32").unwrap();
        assert_eq!(s.to_string(), "1A,2B,3C,4-32");
        assert!(s.contains(Port::new(1, Some(1))));
        assert!(!s.contains(Port::new(1, Some(2))));
        assert!(s.contains(Port::new(2, None)));
        assert!(s.contains(Port::new(17, Some(3))));
        assert!(!s.contains(Port::new(33, None)));
        assert_eq!(s.port_numbers(5), vec![1, 2, 3, 4, 5]);
        assert_eq!(PortSpec::parse("all").unwrap(), PortSpec::All);
        assert_eq!(PortSpec::parse("*").unwrap(), PortSpec::All);
        assert_eq!(PortSpec::parse("1,ALL").unwrap(), PortSpec::All);
        assert_eq!(PortSpec::parse("2.02").unwrap().to_string(), "2B");
        for bad in ["", "1,,2", "5-3", "1A-4", "1-x", "zz"] {
            assert!(PortSpec::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
