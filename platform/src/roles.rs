//! Who may call what. Three roles, each including the one below:
//! `view` reads everything the API serves; `operator` also sends commands;
//! `admin` also manages callbacks, routes and (when the API has them) keys
//! and users. A user's role is the highest one listed in its config entry
//! (`roles`, or the seed's name `privileges`); the table in `required` is
//! the one written in the README.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    View,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "view" => Some(Role::View),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The seed's `privileges` list of a login: this role and those it includes.
    pub fn privileges(self) -> Vec<&'static str> {
        [Role::Admin, Role::Operator, Role::View].into_iter().filter(|r| *r <= self).map(Role::as_str).collect()
    }

    /// The highest role named in a user's config entry (no role: `view`).
    pub fn of(names: &[String]) -> Result<Role, String> {
        names.iter().try_fold(Role::View, |best, n| Role::parse(n).map(|r| best.max(r)).ok_or_else(|| format!("unknown role '{n}' (view, operator or admin)")))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role an API call needs (`path` under `/iot/api/v1/`). Reading the
/// seed's monitoring, route and command endpoints needs `view`; sending
/// commands `operator`; every other call — the writes, and anything not
/// listed here (e.g. a key or user endpoint added later) — `admin`.
pub fn required(method: &str, path: &str) -> Role {
    let seed_read = path.starts_with("monitor/") || path == "msgroute/configs" || path.starts_with("remotectl/commands");
    match (method, path) {
        ("POST", "auth/login" | "auth/logout") => Role::View,
        ("GET", _) if seed_read => Role::View,
        ("POST", "remotectl/commands") => Role::Operator,
        _ => Role::Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix() {
        assert_eq!(required("GET", "remotectl/commands"), Role::View);
        assert_eq!(required("GET", "msgroute/configs"), Role::View);
        assert_eq!(required("GET", "monitor/devices/callbacks/device/stats"), Role::View);
        assert_eq!(required("GET", "remotectl/commands/responses"), Role::View);
        assert_eq!(required("GET", "platform/key"), Role::Admin, "anything new is admin's until listed");
        assert_eq!(required("POST", "remotectl/commands"), Role::Operator);
        for (m, p) in [("POST", "msgroute/configs"), ("PUT", "msgroute/configs"), ("DELETE", "msgroute/configs"), ("POST", "monitor/devices/callbacks"), ("POST", "monitor/devices/callbacks/enable"), ("POST", "anything/new")] {
            assert_eq!(required(m, p), Role::Admin, "{m} {p}");
        }
        assert_eq!(Role::of(&["view".into(), "operator".into()]), Ok(Role::Operator));
        assert_eq!(Role::of(&[]), Ok(Role::View));
        assert!(Role::of(&["root".into()]).is_err());
        assert_eq!(Role::Admin.privileges(), vec!["admin", "operator", "view"]);
        assert_eq!(Role::View.privileges(), vec!["view"]);
    }
}
