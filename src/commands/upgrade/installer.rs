//! Which package format a download is, and which installer the router has.
//!
//! OpenWrt 24.10 and older install `.ipk` with opkg; 25.12 and later `.apk`
//! with apk-tools v3, which refuses an .ipk. The format is read from the
//! file's first bytes (an .ipk is a gzip'd tar, a v3 .apk starts "ADB"), the
//! installer looked up on PATH, and a package the router cannot install is
//! refused before anything is answered `ok`.
//!
//! Trust: an .apk from OpenWrt's build (or cross/mkapk.py) carries no
//! signature of its own; apk trusts such a package through the SHA-256 a
//! signed index gives for it. Here the SHA-256 comes in the `upgrade`
//! command, over the authenticated MQTT session, and the download was
//! checked against it before the installer runs: that is the index's role,
//! played by the command. So `--allow-untrusted` is right for this one file,
//! and only for it: `--no-network --repositories-file /dev/null` keeps every
//! repository (and any cached, unverified index) out of the transaction.
//! Fleets that sign their packages can demand apk's own check as well with
//! `upgrade_command 'apk add --no-network --repositories-file /dev/null {file}'`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ipk,
    Apk,
}

impl Format {
    pub fn ext(self) -> &'static str {
        match self {
            Format::Ipk => "ipk",
            Format::Apk => "apk",
        }
    }
}

/// The format of a downloaded package, from its first bytes.
pub fn sniff(path: &Path) -> Result<Format, String> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot read the package: {e}"))?;
    f.read_exact(&mut head).map_err(|_| "not a package: shorter than 4 bytes".to_string())?;
    match head {
        [0x1f, 0x8b, _, _] => Ok(Format::Ipk),
        [b'A', b'D', b'B', b'.' | b'd' | b'c'] => Ok(Format::Apk),
        _ => Err("not an .ipk (gzip) or apk v3 (ADB) package".into()),
    }
}

/// The shell command line that installs `file`: `configured` (with `{file}`)
/// when set, else the router's own installer for that format.
pub fn command_line(format: Format, file: &Path, configured: &str, path_env: Option<&str>) -> Result<String, String> {
    let quoted = shell_quote(&file.to_string_lossy());
    if !configured.is_empty() {
        return Ok(configured.replace("{file}", &quoted));
    }
    let apk = find("apk", path_env);
    let opkg = find("opkg", path_env);
    match (format, apk, opkg) {
        (Format::Apk, Some(apk), _) => Ok(format!(
            "{} add --no-network --repositories-file /dev/null --allow-untrusted {quoted}",
            apk.display()
        )),
        // Never --force-reinstall: opkg-lede makes that a removal (the
        // package's prerm disables and stops the agent) then a fresh install.
        (Format::Ipk, _, Some(opkg)) => Ok(format!("{} install {quoted}", opkg.display())),
        (Format::Apk, None, Some(_)) => {
            Err("this router installs .ipk packages (opkg, OpenWrt 24.10 or older): send the .ipk".into())
        }
        (Format::Ipk, Some(_), None) => {
            Err("this router installs .apk packages (apk, OpenWrt 25.12 or later): send the .apk".into())
        }
        _ => Err("neither apk nor opkg found on PATH: set upgrade_command".into()),
    }
}

/// `name` in the directories of PATH (procd's default when unset).
fn find(name: &str, path_env: Option<&str>) -> Option<PathBuf> {
    let path = path_env.unwrap_or("/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(name)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin_dir(names: &[&str]) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dma-inst-{}-{}", std::process::id(), names.join("-")));
        let _ = std::fs::create_dir_all(&d);
        for n in names {
            let p = d.join(n);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        d
    }

    #[test]
    fn picks_the_installer_by_format_and_router() {
        let f = Path::new("/tmp/dma-agent-upgrade.apk");
        let both = bin_dir(&["apk", "opkg"]);
        let p = both.to_string_lossy().to_string();
        let apk = command_line(Format::Apk, f, "", Some(&p)).unwrap();
        assert_eq!(apk, format!("{p}/apk add --no-network --repositories-file /dev/null --allow-untrusted '/tmp/dma-agent-upgrade.apk'"));
        let ipk = command_line(Format::Ipk, Path::new("/tmp/x.ipk"), "", Some(&p)).unwrap();
        assert_eq!(ipk, format!("{p}/opkg install '/tmp/x.ipk'"));

        let only_opkg = bin_dir(&["opkg"]).to_string_lossy().to_string();
        let e = command_line(Format::Apk, f, "", Some(&only_opkg)).unwrap_err();
        assert!(e.contains("send the .ipk"), "{e}");
        let only_apk = bin_dir(&["apk"]).to_string_lossy().to_string();
        let e = command_line(Format::Ipk, f, "", Some(&only_apk)).unwrap_err();
        assert!(e.contains("send the .apk"), "{e}");
        let e = command_line(Format::Ipk, f, "", Some("/nonexistent")).unwrap_err();
        assert!(e.contains("neither"), "{e}");
        // A configured command wins, with the file quoted.
        let c = command_line(Format::Apk, Path::new("/tmp/a b'c.apk"), "my-install {file}", Some("/nonexistent")).unwrap();
        assert_eq!(c, "my-install '/tmp/a b'\\''c.apk'");
        for d in [both, PathBuf::from(only_opkg), PathBuf::from(only_apk)] {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn sniffs_formats() {
        let d = std::env::temp_dir().join(format!("dma-sniff-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for (bytes, want) in [
            (&b"\x1f\x8b\x08\x00rest"[..], Ok(Format::Ipk)),
            (&b"ADBd...."[..], Ok(Format::Apk)),
            (&b"ADB.pckg"[..], Ok(Format::Apk)),
            (&b"!<arch>\n"[..], Err(())),
            (&b"AD"[..], Err(())),
        ] {
            let p = d.join("pkg");
            std::fs::write(&p, bytes).unwrap();
            assert_eq!(sniff(&p).map_err(|_| ()), want, "{bytes:?}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
