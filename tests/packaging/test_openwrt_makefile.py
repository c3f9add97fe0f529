"""openwrt/dma-agent/Makefile under stand-ins for the OpenWrt build system.

No SDK here: rules.mk, package.mk and the feed's rust-package.mk are replaced
by minimal stubs, enough to check that the Makefile parses, declares what the
feed expects, and that its install section lays out the same files as
cross/mkipk.sh (binary from $(PKG_INSTALL_DIR)/bin, init script, conffile).
"""
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PKG = os.path.join(ROOT, "openwrt", "dma-agent")

RULES_MK = """
INCLUDE_DIR:=$(TOPDIR)/include
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_CONF:=install -m0600
CP:=cp -fpR
"""
PACKAGE_MK = """
PKG_BUILD_DIR:=$(BUILD)/build
PKG_INSTALL_DIR:=$(BUILD)/ipkg-install
define BuildPackage
$(Package/$(1))
show:
\t@echo 'NAME=$(PKG_NAME) VERSION=$(PKG_VERSION)-$(PKG_RELEASE) LICENSE=$(PKG_LICENSE)'
\t@echo 'BUILD_DEPENDS=$(PKG_BUILD_DEPENDS) DEPENDS=$$(strip $$(DEPENDS))'
\t@echo 'SECTION=$$(strip $$(SECTION)) CATEGORY=$$(strip $$(CATEGORY))'
\t@echo 'CARGO_PKG_CONFIG_VARS=$$(strip $$(CARGO_PKG_CONFIG_VARS))'
prepare:
\t$(call Build/Prepare)
install:
\t$(call Package/$(1)/install,$(DEST))
conffiles:
\t@echo '$(strip $(Package/$(1)/conffiles))'
endef
"""
RUST_PACKAGE_MK = """
RUST_ARCH_DEPENDS:=@(aarch64||arm||mipsel||x86_64)
# as the feed's rust-values.mk (abridged)
CARGO_PKG_CONFIG_VARS= \\
\tCARGO_PROFILE_RELEASE_LTO=true \\
\tCARGO_PROFILE_RELEASE_OPT_LEVEL=z \\
\tCARGO_PROFILE_RELEASE_PANIC=unwind \\
\tRUSTFLAGS="-Ctarget-feature=-crt-static"
define RustBinPackage
  ifndef Package/$(1)/install
    define Package/$(1)/install
\t$$(INSTALL_DIR) $$(1)/usr/bin/
\t$$(INSTALL_BIN) $$(PKG_INSTALL_DIR)/bin/* $$(1)/usr/bin/
    endef
  endif
endef
"""


class OpenWrtMakefileTest(unittest.TestCase):
    def setUp(self):
        if not shutil.which("make"):
            self.skipTest("make not installed")
        self.tmp = tempfile.mkdtemp()
        top = os.path.join(self.tmp, "top")
        os.makedirs(os.path.join(top, "include"))
        os.makedirs(os.path.join(top, "feeds", "packages", "lang", "rust"))
        for path, text in (("rules.mk", RULES_MK), ("include/package.mk", PACKAGE_MK),
                           ("feeds/packages/lang/rust/rust-package.mk", RUST_PACKAGE_MK)):
            with open(os.path.join(top, path), "w") as f:
                f.write(text)
        self.build = os.path.join(self.tmp, "build")
        os.makedirs(os.path.join(self.build, "ipkg-install", "bin"))
        with open(os.path.join(self.build, "ipkg-install", "bin", "dma-agent"), "w") as f:
            f.write("binary\n")
        self.vars = [f"TOPDIR={top}", f"BUILD={self.build}"]

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def make(self, *args):
        res = subprocess.run(["make", "-s", "-C", PKG, *self.vars, *args],
                             capture_output=True, text=True)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res.stdout

    def test_package_metadata(self):
        out = self.make("show")
        self.assertIn("NAME=dma-agent ", out)
        self.assertIn("LICENSE=Apache-2.0", out)
        self.assertIn("BUILD_DEPENDS=rust/host", out)
        self.assertIn("DEPENDS=@(aarch64||arm||mipsel||x86_64)", out)
        self.assertIn("SECTION=net CATEGORY=Network", out)

    def test_conffiles(self):
        self.assertEqual(self.make("conffiles").strip(), "/etc/config/dma-agent")

    def test_install_layout(self):
        dest = os.path.join(self.tmp, "dest")
        self.make("install", f"DEST={dest}")
        got = {}
        for dirpath, _, files in os.walk(dest):
            for name in files:
                p = os.path.join(dirpath, name)
                got["/" + os.path.relpath(p, dest)] = stat.S_IMODE(os.stat(p).st_mode)
        self.assertEqual(got, {"/usr/bin/dma-agent": 0o755,
                               "/usr/libexec/dma-agent/upgrade": 0o755,
                               "/etc/init.d/dma-agent": 0o755,
                               "/etc/config/dma-agent": 0o600})

    def test_prepare_copies_crate_only(self):
        self.make("prepare")
        build = os.path.join(self.build, "build")
        want = ["Cargo.lock", "Cargo.toml", "build.rs", "src"]
        if os.path.exists(os.path.join(ROOT, "platform", "Cargo.toml")):
            want.append("platform")  # a workspace member: cargo reads it
        self.assertEqual(sorted(os.listdir(build)), sorted(want))
        self.assertFalse(os.path.exists(os.path.join(build, ".cargo")))

    def test_panic_abort_overrides_the_feeds_unwind(self):
        out = self.make("show")
        line = [l for l in out.splitlines() if l.startswith("CARGO_PKG_CONFIG_VARS=")][0]
        panics = [w for w in line.split() if w.startswith("CARGO_PROFILE_RELEASE_PANIC=")]
        # Environment assignments before a command: the last one wins.
        self.assertEqual(panics[-1], "CARGO_PROFILE_RELEASE_PANIC=abort", line)

    def test_version_is_valid_for_apk_and_matches_cargo(self):
        import re
        import sys
        sys.path.insert(0, os.path.join(ROOT, "cross"))
        try:
            import importlib.util
            spec = importlib.util.spec_from_file_location("mkapk", os.path.join(ROOT, "cross", "mkapk.py"))
            mkapk = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mkapk)
        finally:
            sys.path.pop(0)
        with open(os.path.join(PKG, "Makefile")) as f:
            mk = f.read()
        ver = re.search(r"^PKG_VERSION:=(\S+)", mk, re.M).group(1)
        rel = re.search(r"^PKG_RELEASE:=(\S+)", mk, re.M).group(1)
        # CONFIG_USE_APK: VERSION is $(PKG_VERSION)-r$(PKG_RELEASE)
        self.assertTrue(mkapk.VERSION_RE.match(f"{ver}-r{rel}"), f"{ver}-r{rel}")
        with open(os.path.join(ROOT, "Cargo.toml")) as f:
            cargo = re.search(r'^version = "(.*)"', f.read(), re.M).group(1)
        self.assertEqual(ver, cargo)
