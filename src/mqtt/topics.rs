//! Topic names of PROTOCOL.md.

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

impl Topics {
    pub fn new(prefix: &str, sn: &str) -> Topics {
        Topics {
            cmd: format!("{prefix}/cmd/{sn}"),
            resp: format!("{prefix}/resp/cmd"),
            state: format!("{prefix}/state/{sn}"),
            sys: format!("{prefix}/sys"),
            procs: format!("{prefix}/procs"),
            versions: format!("{prefix}/versions"),
            periph: format!("{prefix}/periph"),
            event: format!("{prefix}/event"),
        }
    }
}
