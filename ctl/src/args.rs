//! Command-line parsing of `dma-ctl`.

use super::Failure;
use std::time::Duration;

pub const USAGE: &str = "usage: dma-ctl [OPTIONS] SUBCOMMAND ...

subcommands:
  send SN COMMAND [--method get|set] [--body JSON] [--timeout S] [--id ID]
       [--sign-key FILE [--kid K]]
        send a command to device SN and print its answer; with --sign-key,
        signed with that Ed25519 key (PEM PKCS#8) as key id K (default: the
        id `dma-ctl keygen` printed for it)
  keygen --out FILE [--kid K]
        write a new Ed25519 private key (PEM, mode 0600) to FILE and print
        its public key as kid:BASE64, for `list trusted_key` on the routers
  watch [SN] [--count N]
        print what devices publish (all devices, or only SN) until Ctrl-C
  devices [--wait S]
        list the devices the broker knows (retained state), online or offline

options (before or after the subcommand):
  --host HOST        broker host (default 127.0.0.1)
  --port PORT        broker port (default 1883, 8883 with --tls)
  --tls              connect with TLS
  --ca FILE          CA file for TLS (default: the system bundle)
  --cert FILE        client certificate (with --key)
  --key FILE         client private key
  --user NAME        broker username
  --password PASS    broker password (or env DMA_CTL_PASSWORD)
  --prefix P         topic prefix (default dma)
  --json             machine output: one JSON document per line

exit codes: 0 ok, 1 the device answered err, 2 usage error,
            3 no answer in time, 4 broker unreachable or refused";

/// How to reach the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerOpts {
    pub host: String,
    pub port: Option<u16>,
    pub tls: bool,
    pub ca: String,
    pub cert: String,
    pub key: String,
    pub user: String,
    pub password: String,
}

impl BrokerOpts {
    /// Plain MQTT to 127.0.0.1 (`port` None: the default port), no credentials.
    pub fn local(port: Option<u16>) -> BrokerOpts {
        BrokerOpts {
            host: "127.0.0.1".into(),
            port,
            tls: false,
            ca: String::new(),
            cert: String::new(),
            key: String::new(),
            user: String::new(),
            password: String::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 8883 } else { 1883 })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SendOpts {
    pub sn: String,
    pub command: String,
    pub method: String,
    pub body: serde_json::Value,
    pub timeout: Duration,
    pub id: Option<serde_json::Value>,
    /// Sign with this key (`--sign-key`, `--kid`).
    pub sign: Option<SignOpts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignOpts {
    pub key_file: String,
    /// None: the default key id of the key (as `keygen` prints it).
    pub kid: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sub {
    Send(SendOpts),
    Watch { sn: Option<String>, count: Option<u64> },
    Devices { wait: Duration },
    Keygen { out: String, kid: Option<String> },
    Help,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub broker: BrokerOpts,
    pub prefix: String,
    pub json: bool,
    pub sub: Sub,
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::usage(msg)
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, Failure> {
    v.parse().map_err(|_| usage(format!("{flag}: '{v}' is not a valid number")))
}

fn secs(flag: &str, v: &str) -> Result<Duration, Failure> {
    let s: f64 = num(flag, v)?;
    if !(0.0..=86400.0).contains(&s) {
        return Err(usage(format!("{flag}: {v} is out of range (0 to 86400 s)")));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Parse the body given with `--body`: a JSON object (or a JSON string
/// holding one, as the platform allows).
pub fn parse_body(text: &str) -> Result<serde_json::Value, Failure> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| usage(format!("--body is not valid JSON ({e}); example: --body '{{\"shcmd\":\"uptime\"}}'")))?;
    match v {
        serde_json::Value::Object(_) => Ok(v),
        serde_json::Value::String(ref s) if serde_json::from_str::<serde_json::Value>(s).map(|x| x.is_object()).unwrap_or(false) => Ok(v),
        _ => Err(usage("--body must be a JSON object, e.g. --body '{\"shcmd\":\"uptime\"}'")),
    }
}

/// A command id as given: a number when it is one (kept exact), else a string.
fn parse_id(v: &str) -> Result<serde_json::Value, Failure> {
    if v.is_empty() {
        return Err(usage("--id must not be empty"));
    }
    Ok(match v.parse::<u64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::from(v),
    })
}

/// The value of option `flag` (the next argument, whatever it starts with).
fn value(p: &mut lexopt::Parser, flag: &str) -> Result<String, Failure> {
    let v = p.value().map_err(|_| usage(format!("{flag} needs a value")))?;
    v.into_string().map_err(|v| usage(format!("{flag}: '{}' is not valid UTF-8", v.to_string_lossy())))
}

/// Parse `args` (everything after the program name); `env_password` is `DMA_CTL_PASSWORD`.
pub fn parse(args: &[String], env_password: Option<String>) -> Result<Args, Failure> {
    use lexopt::Arg::{Long, Short, Value};
    let mut broker = BrokerOpts { password: env_password.unwrap_or_default(), ..BrokerOpts::local(None) };
    let mut prefix = "dma".to_string();
    let mut json = false;
    let mut method = String::new();
    let mut body: Option<String> = None;
    let mut timeout = Duration::from_secs(30);
    let mut id = None;
    let mut count = None;
    let mut wait = Duration::from_secs(2);
    let mut sign_key: Option<String> = None;
    let mut kid: Option<String> = None;
    let mut out: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(|e| usage(e.to_string()))? {
        match arg {
            Long("host") => broker.host = value(&mut p, "--host")?,
            Long("port") => broker.port = Some(num("--port", &value(&mut p, "--port")?)?),
            Long("tls") => broker.tls = true,
            Long("ca") => broker.ca = value(&mut p, "--ca")?,
            Long("cert") => broker.cert = value(&mut p, "--cert")?,
            Long("key") => broker.key = value(&mut p, "--key")?,
            Long("user") => broker.user = value(&mut p, "--user")?,
            Long("password") => broker.password = value(&mut p, "--password")?,
            Long("prefix") => prefix = value(&mut p, "--prefix")?,
            Long("json") => json = true,
            Long("method") => method = value(&mut p, "--method")?,
            Long("body") => body = Some(value(&mut p, "--body")?),
            Long("timeout") => timeout = secs("--timeout", &value(&mut p, "--timeout")?)?,
            Long("id") => id = Some(parse_id(&value(&mut p, "--id")?)?),
            Long("count") => count = Some(num("--count", &value(&mut p, "--count")?)?),
            Long("wait") => wait = secs("--wait", &value(&mut p, "--wait")?)?,
            Long("sign-key") => sign_key = Some(value(&mut p, "--sign-key")?),
            Long("kid") => {
                let k = value(&mut p, "--kid")?;
                dma_agent::trust::keys::check_kid(&k).map_err(|e| usage(format!("--kid: {e}")))?;
                kid = Some(k)
            }
            Long("out") => out = Some(value(&mut p, "--out")?),
            Long("help") | Short('h') => return Ok(Args { broker, prefix, json, sub: Sub::Help }),
            Long(f) => return Err(usage(format!("unknown option '--{f}'"))),
            Short(c) => return Err(usage(format!("unknown option '-{c}'"))),
            Value(v) => positional.push(v.into_string().map_err(|v| usage(format!("'{}' is not valid UTF-8", v.to_string_lossy())))?),
        }
    }
    if prefix.is_empty() || prefix.contains(['+', '#']) {
        return Err(usage("--prefix must be non-empty and must not contain + or #"));
    }
    if broker.cert.is_empty() != broker.key.is_empty() {
        return Err(usage("--cert and --key go together"));
    }
    if !broker.tls && !(broker.ca.is_empty() && broker.cert.is_empty()) {
        return Err(usage("--ca, --cert and --key need --tls"));
    }
    let check_sn = |sn: &str| -> Result<(), Failure> {
        if sn.is_empty() || sn.contains(['/', '+', '#']) {
            return Err(usage(format!("'{sn}' is not a device serial")));
        }
        Ok(())
    };
    let mut pos = positional.into_iter();
    let sub = match pos.next().as_deref() {
        Some("send") => {
            let (Some(sn), Some(command)) = (pos.next(), pos.next()) else {
                return Err(usage("send needs SN and COMMAND, e.g. dma-ctl send 8CFCA0107D1B sh --body '{\"shcmd\":\"uptime\"}'"));
            };
            check_sn(&sn)?;
            if !matches!(method.as_str(), "" | "get" | "set") {
                return Err(usage(format!("--method must be get or set, not '{method}'")));
            }
            let body = match body {
                Some(b) => parse_body(&b)?,
                None => serde_json::json!({}),
            };
            if timeout.is_zero() {
                return Err(usage("--timeout must be above 0"));
            }
            if sign_key.is_none() && kid.is_some() {
                return Err(usage("--kid goes with --sign-key FILE"));
            }
            let sign = sign_key.take().map(|key_file| SignOpts { key_file, kid: kid.take() });
            Sub::Send(SendOpts { sn, command, method, body, timeout, id, sign })
        }
        Some("watch") => {
            let sn = pos.next();
            if let Some(s) = &sn {
                check_sn(s)?;
            }
            Sub::Watch { sn, count }
        }
        Some("devices") => Sub::Devices { wait },
        Some("keygen") => {
            let Some(out) = out.take() else { return Err(usage("keygen needs --out FILE")) };
            Sub::Keygen { out, kid: kid.take() }
        }
        Some("help") => Sub::Help,
        Some(other) => return Err(usage(format!("unknown subcommand '{other}'"))),
        None => return Err(usage("a subcommand is needed: send, watch, devices or keygen")),
    };
    if let Some(extra) = pos.next() {
        return Err(usage(format!("unexpected argument '{extra}'")));
    }
    if sign_key.is_some() || kid.is_some() || out.is_some() {
        return Err(usage("--sign-key and --kid go with send; --out (and --kid) with keygen"));
    }
    Ok(Args { broker, prefix, json, sub })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Args, Failure> {
        parse(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>(), None)
    }

    #[test]
    fn send_with_options() {
        let a = p(&["--host", "h", "send", "AB12", "iad", "--method", "get", "--body", "{\"api\":\"x\"}", "--id", "18446744073709551615", "--json"]).unwrap();
        assert_eq!(a.broker.host, "h");
        assert!(a.json);
        let Sub::Send(s) = a.sub else { panic!() };
        assert_eq!(s.method, "get");
        assert_eq!(s.id, Some(serde_json::json!(18446744073709551615u64)));
        assert_eq!(s.body["api"], "x");
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["send", "SN"][..],
            &["send", "SN", "sh", "--body", "{not json"],
            &["send", "SN", "sh", "--body", "[1]"],
            &["send", "SN", "sh", "--method", "put"],
            &["send", "SN", "sh", "--timeout", "x"],
            &["frob"],
            &[],
            &["--cert", "c", "--tls", "devices"],
            &["watch", "a/b"],
            &["--port"],
            &["--frob", "devices"],
            &["-x", "devices"],
            &["--json=1", "devices"],
        ] {
            assert_eq!(p(bad).unwrap_err().code, 2, "{bad:?}");
        }
    }

    #[test]
    fn signing_and_keygen_options() {
        let a = p(&["send", "SN", "sh", "--sign-key", "/k.pem", "--kid", "k1"]).unwrap();
        let Sub::Send(s) = a.sub else { panic!() };
        assert_eq!(s.sign, Some(SignOpts { key_file: "/k.pem".into(), kid: Some("k1".into()) }));
        assert_eq!(p(&["keygen", "--out", "/x"]).unwrap().sub, Sub::Keygen { out: "/x".into(), kid: None });
        for bad in [&["keygen"][..], &["send", "SN", "sh", "--kid", "k1"], &["send", "SN", "sh", "--sign-key", "f", "--kid", "bad kid"]] {
            assert_eq!(p(bad).unwrap_err().code, 2, "{bad:?}");
        }
    }

    #[test]
    fn values_may_start_with_a_dash_and_options_may_use_equals() {
        let a = p(&["send", "SN", "sh", "--id", "-7", "--body=\"{}\"", "--port=1884"]).unwrap();
        assert_eq!(a.broker.port, Some(1884));
        let Sub::Send(s) = a.sub else { panic!() };
        assert_eq!(s.id, Some(serde_json::json!("-7")));
        assert_eq!(p(&["--port"]).unwrap_err().msg, "--port needs a value");
        assert_eq!(p(&["--frob"]).unwrap_err().msg, "unknown option '--frob'");
    }

    #[test]
    fn env_password_and_tls_port() {
        let a = parse(&["--tls".to_string(), "devices".to_string()], Some("pw".into())).unwrap();
        assert_eq!(a.broker.password, "pw");
        assert_eq!(a.broker.port(), 8883);
    }
}
