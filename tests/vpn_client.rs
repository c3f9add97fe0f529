//! The Sangfor VPN console client against its HTTPS simulator (127.0.0.1 only).

use dma_agent::devices::vpn::api::UserSpec;
use dma_agent::devices::vpn::{https, sign, VpnClient};
use dma_agent::devices::{DeviceConfig, DeviceError, DeviceKind, LanDevice};
use dma_sims::vpn::{VpnSim, VpnSimConfig};
use dma_sims::Fault;
use dma_agent::util::{unix_now, url_encode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const SECRET: &str = "sim-vpn-secret";

fn sim() -> VpnSim {
    VpnSim::start("127.0.0.1:0", VpnSimConfig::default()).expect("simulator starts")
}

fn config(sim: &VpnSim, options: &[(&str, &str)]) -> DeviceConfig {
    config_at(&sim.url(), options)
}

fn config_at(url: &str, options: &[(&str, &str)]) -> DeviceConfig {
    DeviceConfig {
        name: "vpn1".into(),
        kind: DeviceKind::Vpn,
        address: url.into(),
        username: String::new(),
        password: String::new(),
        poll_interval: Duration::from_secs(60),
        timeout: Duration::from_millis(1500),
        enabled: true,
        options: options.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }
}

/// A client that pins the simulator's certificate.
fn pinned(sim: &VpnSim) -> VpnClient {
    let fp = sim.cert_sha256();
    VpnClient::new(&config(sim, &[("api_secret", SECRET), ("fingerprint", &fp)])).expect("client")
}

fn transport_msg(r: Result<impl std::fmt::Debug, DeviceError>) -> String {
    match r {
        Err(DeviceError::Transport(m)) => m,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[test]
fn signature_matches_hand_computed_vector() {
    // printf '%s' 'action=AddUserCloud&controler=User&name=alice&note=Alice - sales&parent_group=/sales&timestamp=17000000001700000000s3cret' | sha256sum
    let pairs = [
        ("controler", "User"),
        ("action", "AddUserCloud"),
        ("name", "alice"),
        ("parent_group", "/sales"),
        ("note", "Alice - sales"),
        ("timestamp", "1700000000"),
    ];
    assert_eq!(
        sign::canonical(pairs),
        "action=AddUserCloud&controler=User&name=alice&note=Alice - sales&parent_group=/sales&timestamp=1700000000"
    );
    assert_eq!(sign::token(pairs, "1700000000", "s3cret"), "53eaf81db4219d9e44a23b8788266ec637ff90ebf0050d7f025f71663219bf92");
}

#[test]
fn user_round_trip_takes_effect_only_after_commit() {
    let sim = sim();
    let vpn = pinned(&sim);

    let mut alice = UserSpec::new("alice", "/sales");
    alice.note = Some("Alice - 销售".into());
    alice.passwd = Some("pw&=1".into());
    alice.phone = Some("13800000000".into());
    alice.role_name = Some("a,b".into());
    let added = vpn.add_user(&alice).unwrap();
    assert_eq!(added.message, "添加用户成功");

    let stored = sim.user("alice").expect("alice stored");
    assert_eq!((stored.parent_group.as_str(), stored.note.as_str()), ("/sales", "Alice - 销售"));
    assert_eq!((stored.passwd.as_str(), stored.phone.as_str(), stored.role_name.as_str()), ("pw&=1", "13800000000", "a,b"));
    assert!(stored.is_enable && stored.b_inherit_auth);
    assert!(sim.pending() && sim.active_users().is_empty() && sim.commits() == 0);

    let q = vpn.query_user("alice").unwrap();
    assert_eq!((q["name"].as_str(), q["grpname"].as_str(), q["note"].as_str()), (Some("alice"), Some("/sales"), Some("Alice - 销售")));
    assert_eq!(q["is_enable"], "1");

    assert!(matches!(vpn.add_user(&alice), Err(DeviceError::Device { code: -9, .. })));
    assert!(matches!(vpn.add_user(&UserSpec::new("bob", "/nowhere")), Err(DeviceError::Device { code: -13, .. })));

    let mut renamed = UserSpec::new("alice2", "/it");
    renamed.note = Some("moved".into());
    renamed.is_enable = Some(false);
    assert_eq!(vpn.update_user("alice", &renamed).unwrap().message, "操作成功");
    assert!(sim.user("alice").is_none());
    let moved = sim.user("alice2").expect("renamed");
    assert_eq!((moved.parent_group.as_str(), moved.note.as_str(), moved.is_enable), ("/it", "moved", false));
    assert_eq!(moved.passwd, "pw&=1", "fields not sent stay as they were");
    assert!(matches!(vpn.update_user("ghost", &renamed), Err(DeviceError::Device { code: 10, .. })));

    let committed = vpn.commit().unwrap();
    assert_eq!(committed.raw["code"], 0);
    assert_eq!(sim.commits(), 1);
    assert!(!sim.pending());
    assert_eq!(sim.active_users().iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alice2"]);

    vpn.delete_users(&["alice2"]).unwrap();
    match vpn.query_user("alice2") {
        Err(DeviceError::Device { code: -10, msg }) => assert!(msg.contains("用户不存在"), "{msg}"),
        other => panic!("expected -10, got {other:?}"),
    }
    assert!(sim.pending() && sim.active_users().len() == 1);
}

#[test]
fn command_commits_only_when_asked_and_after_success() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    let add = |name: &str, group: &str, commit: bool| {
        json!({"controler": "User", "action": "AddUserCloud", "params": {"name": name, "parent_group": group, "b_inherit_auth": false}, "commit": commit})
    };

    let plain = vpn.command("set", &add("u1", "/sales", false)).unwrap();
    assert_eq!((plain["code"].as_i64(), plain["message"].as_str()), (Some(0), Some("添加用户成功")));
    assert_eq!(sim.commits(), 0);
    assert!(!sim.user("u1").unwrap().b_inherit_auth);

    assert_eq!(plain["committed"], false);
    let both = vpn.command("set", &add("u2", "/it", true)).unwrap();
    assert_eq!(both["code"], 0);
    assert_eq!(both["committed"], true);
    assert_eq!(both["commit_answer"]["code"], 0);
    assert_eq!(sim.commits(), 1);
    assert_eq!(sim.active_users().len(), 2);

    let failed = vpn.command("set", &add("u3", "/nowhere", true));
    assert!(matches!(failed, Err(DeviceError::Device { code: -13, .. })), "{failed:?}");
    assert_eq!(sim.commits(), 1, "no commit after a failed change");

    let del = json!({"controler": "User", "action": "DelUserByNameCloud", "params": {"names": ["u1", "u2"]}, "commit": true});
    vpn.command("set", &del).unwrap();
    assert_eq!(sim.commits(), 2);
    assert!(sim.active_users().is_empty());

    let got = vpn.command("get", &json!({"controler": "Group", "action": "GetGroupInfo", "params": {"group_name": "/sales"}})).unwrap();
    assert_eq!(got["result"]["path"], "/sales");
    let refused = vpn.command("get", &add("u4", "/it", false));
    assert!(matches!(refused, Err(DeviceError::BadRequest(_))), "{refused:?}");
    assert!(sim.user("u4").is_none(), "a refused get sends nothing");
    let unknown = vpn.command("set", &json!({"controler": "Nope", "action": "Nothing"}));
    assert!(matches!(unknown, Err(DeviceError::Device { code: 1, .. })), "{unknown:?}");
}

#[test]
fn commit_api_is_configurable() {
    let sim = sim();
    let fp = sim.cert_sha256();
    let vpn = VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("fingerprint", &fp), ("commit_api", "Updater/DataSyncCloud")])).unwrap();
    assert_eq!(vpn.commit_call().to_string(), "Updater/DataSyncCloud");
    vpn.commit().unwrap();
    assert_eq!(sim.commits(), 1);
    assert!(VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("commit_api", "Updater")])).is_err());
}

#[test]
fn poll_reports_online_with_counts_and_console_answer() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    vpn.add_user(&UserSpec::new("a", "/sales")).unwrap();
    vpn.add_user(&UserSpec::new("b", "/it")).unwrap();
    let st = vpn.poll().unwrap();
    assert_eq!(st.msg["online"], true);
    assert_eq!(st.msg["users"], 2);
    assert_eq!(st.msg["groups"], 2);
    assert_eq!(st.msg["commit_api"], "Updater/UpdaterCloud");
    assert_eq!(st.msg["group_info"]["result"]["name"], "/");
    assert!(st.firmware.is_none());
}

#[test]
fn wrong_secret_is_an_auth_error_and_never_shown() {
    let sim = sim();
    let fp = sim.cert_sha256();
    let mut vpn = VpnClient::new(&config(&sim, &[("api_secret", "not-the-secret"), ("fingerprint", &fp)])).unwrap();
    let err = vpn.poll().unwrap_err();
    assert!(matches!(err, DeviceError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-secret"));
    assert!(!format!("{vpn:?}").contains("not-the-secret"));

    // The section's password is the fallback secret.
    let mut cfg = config(&sim, &[("fingerprint", &fp)]);
    cfg.password = SECRET.into();
    VpnClient::new(&cfg).unwrap().poll().unwrap();
    cfg.password.clear();
    assert!(VpnClient::new(&cfg).is_err(), "a secret is required");
}

#[test]
fn stale_timestamp_is_refused() {
    let sim = sim();
    let fp = sim.cert_sha256();
    let tls = dma_agent::devices::vpn::tls::Trust::from_options(Some(&fp), None).unwrap().client_config().unwrap();
    let ep = https::Endpoint::parse(&sim.url()).unwrap();
    let ts = (unix_now() - 301).to_string();
    let pairs = [("controler", "Updater"), ("action", "UpdaterCloud"), ("timestamp", ts.as_str())];
    let token = sign::token(pairs, &ts, SECRET);
    let body = format!("timestamp={ts}&sinfor_apitoken={}", url_encode(&token));
    let path = "/cgi-bin/php-cgi/html/delegatemodule/WebApi.php?controler=Updater&action=UpdaterCloud";
    let resp = https::post_form(&tls, &ep, path, &body, Duration::from_secs(2)).unwrap();
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["code"], 4);
    assert_eq!(sim.commits(), 0);
}

#[test]
fn pinned_fingerprint_accepts_any_spelling_and_refuses_others() {
    let sim = sim();
    let fp = sim.cert_sha256().to_uppercase();
    let colons: Vec<String> = fp.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let mut vpn = VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("fingerprint", &colons.join(":"))])).unwrap();
    vpn.poll().unwrap();

    let wrong = "00".repeat(32);
    let mut vpn = VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("fingerprint", &wrong)])).unwrap();
    let msg = transport_msg(vpn.poll());
    assert!(msg.contains("TLS") && msg.contains("fingerprint mismatch"), "{msg}");
    assert!(msg.contains(&sim.cert_sha256()), "names the presented fingerprint: {msg}");
    assert!(VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("fingerprint", "abc")])).is_err());
}

#[test]
fn ca_file_verifies_and_no_trust_anchor_is_refused() {
    let sim = sim();
    let path = std::env::temp_dir().join(format!("dma-vpn-ca-{}-{}.pem", std::process::id(), sim.port()));
    std::fs::write(&path, sim.cert_pem()).unwrap();
    let ca = path.to_string_lossy().into_owned();
    let mut vpn = VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("ca_file", &ca)])).unwrap();
    let polled = vpn.poll();
    let _ = std::fs::remove_file(&path);
    polled.unwrap();

    // Neither pin nor CA: public roots, and the self-signed console fails.
    let mut vpn = VpnClient::new(&config(&sim, &[("api_secret", SECRET)])).unwrap();
    let msg = transport_msg(vpn.poll());
    assert!(msg.contains("certificate") && msg.contains("fingerprint or ca_file"), "{msg}");
    assert_eq!(sim.commits(), 0);

    assert!(VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("ca_file", "/nonexistent/ca.pem")])).is_err());
    assert!(VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("ca_file", &ca), ("fingerprint", &sim.cert_sha256())])).is_err());
    let mut plain = config(&sim, &[("api_secret", SECRET)]);
    plain.address = plain.address.replace("https://", "http://");
    assert!(VpnClient::new(&plain).is_err(), "http:// is refused");
}

#[test]
fn malformed_answers_are_protocol_errors() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    sim.set_fault(Fault::Garbage);
    assert!(matches!(vpn.poll(), Err(DeviceError::Protocol(_))));
    sim.set_fault(Fault::Error500);
    let e = vpn.poll().unwrap_err();
    assert!(matches!(&e, DeviceError::Protocol(m) if m.contains("500")), "{e:?}");
    sim.set_fault(Fault::None);
    vpn.poll().unwrap();
}

#[test]
fn slow_console_times_out() {
    let sim = sim();
    let fp = sim.cert_sha256();
    let mut cfg = config(&sim, &[("api_secret", SECRET), ("fingerprint", &fp)]);
    cfg.timeout = Duration::from_millis(300);
    let mut vpn = VpnClient::new(&cfg).unwrap();
    sim.set_fault(Fault::Slow(Duration::from_secs(3)));
    let started = Instant::now();
    let e = vpn.poll().unwrap_err();
    assert!(matches!(e, DeviceError::Timeout(_)), "{e:?}");
    assert!(e.is_unreachable());
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by the timeout: {:?}", started.elapsed());
}

#[test]
fn dropped_connection_is_a_transport_error() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    sim.set_fault(Fault::Drop);
    let e = vpn.poll().unwrap_err();
    assert!(matches!(e, DeviceError::Transport(_)), "{e:?}");
    // Nothing listening at all.
    let port = sim.port();
    drop(sim);
    let cfg = config_at(&format!("https://127.0.0.1:{port}"), &[("api_secret", SECRET)]);
    let e = VpnClient::new(&cfg).unwrap().poll().unwrap_err();
    assert!(matches!(e, DeviceError::Transport(_)), "{e:?}");
}

/// The signature rule of DEVICE-NOTES on both sides, each against a value
/// computed outside either (`printf … | sha256sum`).
#[test]
fn signature_vector_holds_on_both_sides() {
    let want = "fe4d36b8a73ba6a005375b95da45e9d520afd201e16933c8ed79f37b4535c5cd";
    let pairs = [("controler", "Updater"), ("action", "UpdaterCloud"), ("timestamp", "1700000000")];
    assert_eq!(sign::token(pairs, "1700000000", "s3cret"), want, "client");
    let owned = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    let query = owned(&[("controler", "Updater"), ("action", "UpdaterCloud")]);
    let body = owned(&[("timestamp", "1700000000"), ("sinfor_apitoken", "ignored")]);
    assert_eq!(dma_sims::vpn::signature::expected(&query, &body, "1700000000", "s3cret"), want, "simulator");
    let want2 = "c5f00f7e5cae0ad1f923068a911cbf1f0c9f24ee1b63037bb09d92ea5597207a";
    let pairs2 = [("controler", "User"), ("action", "GetSearchData"), ("search", "al"), ("limit", "5"), ("timestamp", "1700000000")];
    assert_eq!(sign::token(pairs2, "1700000000", "s3cret"), want2, "client");
    let query2 = owned(&[("controler", "User"), ("action", "GetSearchData")]);
    let body2 = owned(&[("search", "al"), ("limit", "5"), ("timestamp", "1700000000")]);
    assert_eq!(dma_sims::vpn::signature::expected(&query2, &body2, "1700000000", "s3cret"), want2, "simulator");
}

/// Issue 10 item 12: the console takes only the seed's fields in add and
/// update (`passwd`, not `password`), and `names` as a JSON array or `u1,u2`.
#[test]
fn console_is_strict_about_fields_and_lenient_about_names() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    let add = dma_agent::devices::vpn::api::Call::new("User", "AddUserCloud").unwrap();
    // Straight to the console (the command would refuse it before sending).
    let e = vpn.call(&add, &[("name", "eve"), ("parent_group", "/"), ("password", "x")]).unwrap_err();
    assert!(matches!(&e, DeviceError::Device { code: -2, msg } if msg.contains("password")), "{e:?}");
    assert!(sim.user("eve").is_none());
    let e = vpn.command("set", &json!({"controler": "User", "action": "AddUserCloud", "params": {"name": "eve", "parent_group": "/", "password": "x"}}));
    assert!(matches!(&e, Err(DeviceError::BadRequest(m)) if m.contains("passwd")), "{e:?}");
    vpn.call(&add, &[("name", "eve"), ("parent_group", "/"), ("passwd", "x")]).unwrap();
    assert_eq!(sim.user("eve").unwrap().passwd, "x");
    for n in ["a1", "a2", "a3"] {
        vpn.add_user(&UserSpec::new(n, "/sales")).unwrap();
    }
    let del = |names: Value| json!({"controler": "User", "action": "DelUserByNameCloud", "params": {"names": names}});
    vpn.command("set", &del(json!(["a1"]))).unwrap();
    vpn.command("set", &del(json!("a2,a3"))).unwrap();
    assert_eq!(sim.commits(), 2, "each set committed by default");
    assert_eq!(sim.users().iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["eve"]);
}

/// Issue 10 item 13: the actions operators use beyond add/update/delete,
/// through the `vpn get|set` command.
#[test]
fn operators_actions_enable_list_online_kick() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    for (n, g) in [("alice", "/sales"), ("albert", "/it"), ("bob", "/sales")] {
        vpn.add_user(&UserSpec::new(n, g)).unwrap();
    }
    assert!(!sim.login("alice", "192.0.2.5"), "not in effect before the commit");
    vpn.commit().unwrap();
    assert!(sim.login("alice", "192.0.2.5") && sim.login("bob", "192.0.2.6"));

    let list = vpn.command("get", &json!({"controler": "User", "action": "GetSearchData", "params": {"search": "al", "limit": 10}})).unwrap();
    assert_eq!(list["result"]["total"], 2);
    let names: Vec<&str> = list["result"]["data"].as_array().unwrap().iter().filter_map(|u| u["name"].as_str()).collect();
    assert_eq!(names, ["albert", "alice"]);
    let page = vpn.command("get", &json!({"controler": "User", "action": "GetSearchData", "params": {"parent_group": "/sales", "start": 1, "limit": 1}})).unwrap();
    assert_eq!((page["result"]["total"].as_u64(), page["result"]["data"][0]["name"].as_str()), (Some(2), Some("bob")));

    let online = vpn.command("get", &json!({"controler": "State", "action": "GetOnlineUserCloud"})).unwrap();
    assert_eq!(online["result"]["total"], 2);
    assert_eq!(online["result"]["data"][0], json!({"name": "alice", "ip": "192.0.2.5", "login_time": online["result"]["data"][0]["login_time"]}));

    // Disable (takes effect with the commit), then kick.
    let off = json!({"controler": "User", "action": "ExtSetUserEnable", "params": {"names": ["alice"], "is_enable": 0}, "commit": true});
    vpn.command("set", &off).unwrap();
    assert!(!sim.user("alice").unwrap().is_enable);
    assert!(!sim.login("alice", "192.0.2.7"), "a disabled user cannot log in");
    let kick = vpn.command("set", &json!({"controler": "State", "action": "KillOnlineUserCloud", "params": {"names": "alice"}})).unwrap();
    assert_eq!(kick["result"]["killed"], json!(["alice"]));
    assert_eq!(sim.online().iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["bob"]);
    let ghost = vpn.command("set", &json!({"controler": "User", "action": "ExtSetUserEnable", "params": {"names": "ghost", "is_enable": 1}}));
    assert!(matches!(ghost, Err(DeviceError::Device { code: -10, .. })), "{ghost:?}");
    // Changes are refused under get; DataSyncCloud is the other name of the commit.
    assert!(matches!(vpn.command("get", &off), Err(DeviceError::BadRequest(_))));
    let commits = sim.commits();
    vpn.command("set", &json!({"controler": "Updater", "action": "DataSyncCloud"})).unwrap();
    assert_eq!(sim.commits(), commits + 1);
}

/// Issue 21 item 1: a `vpn set` commits unless told not to, every answer
/// says whether it did, and a failed commit is an error.
#[test]
fn set_commits_by_default_and_says_so() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    let add = |name: &str| json!({"controler": "User", "action": "AddUserCloud", "params": {"name": name, "parent_group": "/sales", "passwd": "pw"}});
    let a = vpn.command("set", &add("carol")).unwrap();
    assert_eq!((a["code"].as_i64(), a["committed"].as_bool()), (Some(0), Some(true)), "{a}");
    assert_eq!(sim.commits(), 1);
    assert!(sim.login("carol", "192.0.2.9"), "the new user can log in: the change is in effect");

    let mut batch = add("dave");
    batch["commit"] = json!(false);
    let b = vpn.command("set", &batch).unwrap();
    assert_eq!(b["committed"], false);
    assert!(sim.pending() && !sim.login("dave", "192.0.2.9"));
    let c = vpn.command("set", &json!({"controler": "Updater", "action": "UpdaterCloud"})).unwrap();
    assert_eq!(c["committed"], true);
    assert_eq!(sim.commits(), 2, "the commit itself is not committed twice");
    let q = vpn.command("get", &json!({"controler": "User", "action": "ExGetUserInfo", "params": {"username": "dave"}})).unwrap();
    assert_eq!(q["committed"], false);

    // A commit call the console refuses: the change is saved, the answer is an error.
    let fp = sim.cert_sha256();
    let mut broken = VpnClient::new(&config(&sim, &[("api_secret", SECRET), ("fingerprint", &fp), ("commit_api", "Updater/Nope")])).unwrap();
    let e = broken.command("set", &add("erin")).unwrap_err();
    assert!(e.to_string().contains("not in effect"), "{e}");
    assert!(sim.user("erin").is_some() && sim.pending());
}

/// Issue 21 item 2: the fields the vendor's published client sends reach
/// the console and are accepted; fields no source knows are still refused.
#[test]
fn vendor_client_field_sets_are_accepted() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    let user = |action: &str, params: Value| json!({"controler": "User", "action": action, "params": params});
    vpn.command("set", &user("AddUserCloud", json!({"name": "v1", "parent_group": "/", "passwd": "x", "delay_flush": 0}))).unwrap();
    vpn.command("set", &user("UpdateUserCloud", json!({"old_name": "v1", "new_name": "v1", "parent_group": "/it", "delay_flush": 0}))).unwrap();
    vpn.command("set", &user("ExtSetUserEnable", json!({"username": "v1", "enable": 0}))).unwrap();
    assert!(!sim.active_users().iter().any(|u| u.name == "v1" && u.is_enable), "disabled and in effect");
    assert!(!sim.login("v1", "192.0.2.1"));
    vpn.command("set", &user("ExtSetUserEnable", json!({"username": "v1", "enable": 1}))).unwrap();
    assert!(sim.login("v1", "192.0.2.1"));
    vpn.command("set", &user("DelUserByNameCloud", json!({"names": ["v1"], "delay_flush": 0}))).unwrap();
    assert!(sim.users().is_empty());
    let seen: Vec<(String, Vec<String>)> = sim.requests().into_iter().filter(|(c, _)| !c.starts_with("Updater/")).collect();
    let fields = |call: &str| -> Vec<String> {
        seen.iter().filter(|(c, _)| c == call).flat_map(|(_, f)| f.clone()).filter(|f| f != "timestamp" && f != "sinfor_apitoken").collect()
    };
    let mut add = fields("User/AddUserCloud");
    add.sort();
    assert_eq!(add, ["delay_flush", "name", "parent_group", "passwd"]);
    assert!(fields("User/AddUserCloud").contains(&"delay_flush".to_string()));
    assert!(fields("User/UpdateUserCloud").contains(&"delay_flush".to_string()));
    assert!(fields("User/DelUserByNameCloud").contains(&"delay_flush".to_string()));
    let enable = fields("User/ExtSetUserEnable");
    assert!(enable.contains(&"username".to_string()) && enable.contains(&"enable".to_string()), "{enable:?}");
    // Straight to the console: an unknown field is refused there too.
    let del = dma_agent::devices::vpn::api::Call::new("User", "DelUserByNameCloud").unwrap();
    let e = vpn.call(&del, &[("names", "v1"), ("force", "1")]).unwrap_err();
    assert!(matches!(&e, DeviceError::Device { code: -2, msg } if msg.contains("force")), "{e:?}");
    let e = vpn.command("set", &user("ExtSetUserEnable", json!({"username": "v1", "state": 1}))).unwrap_err();
    assert!(matches!(e, DeviceError::BadRequest(_)));
}

/// Issue 21 item 3: `passwd` and `sec_key` never leave the client, neither
/// in a command answer nor in the status.
#[test]
fn user_secrets_are_masked_in_answers_and_status() {
    let sim = sim();
    let mut vpn = pinned(&sim);
    vpn.add_user(&UserSpec { passwd: Some("hunter2".into()), ..UserSpec::new("frank", "/sales") }).unwrap();
    let raw = vpn.query_user("frank").unwrap();
    let key = raw["sec_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 32, "the simulator gives a key, as the seed's example does");
    let a = vpn.command("get", &json!({"controler": "User", "action": "ExGetUserInfo", "params": {"username": "frank"}})).unwrap();
    assert_eq!(a["result"]["name"], "frank");
    assert_eq!(a["result"]["passwd"], "******");
    assert_eq!(a["result"]["sec_key"], "******");
    let text = a.to_string();
    assert!(!text.contains(&key) && !text.contains(raw["passwd"].as_str().unwrap()), "{text}");
    let list = vpn.command("get", &json!({"controler": "User", "action": "GetSearchData"})).unwrap();
    assert_eq!(list["result"]["data"][0]["sec_key"], "******");
    assert!(!list.to_string().contains(&key));
    let st = vpn.poll().unwrap();
    assert!(!st.msg.to_string().contains(&key));
}
