"""Tests of cross/mkipk.sh: the .ipk must be what OpenWrt's ipkg-build makes.

Run from the repository root:  python3 -m unittest discover -s tests/packaging -v
Needs only bash, GNU tar and gzip (no Rust build: a dummy binary is packed).
"""
import gzip
import io
import os
import subprocess
import tarfile
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MKIPK = os.path.join(ROOT, "cross", "mkipk.sh")
EPOCH = "1700000000"
ARCH = "arm_cortex-a7_neon-vfpv4"
VERSION = "0.1.0-r1"
CONTROL_FIELDS = ["Package", "Version", "Depends", "Source", "SourceName", "License",
                  "Section", "SourceDateEpoch", "Maintainer", "Architecture",
                  "Installed-Size", "Description"]
POSTINST = ('#!/bin/sh\n'
            '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0\n'
            '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n'
            '. ${IPKG_INSTROOT}/lib/functions.sh\n'
            'default_postinst $0 $@\n')
PRERM = ('#!/bin/sh\n'
         '[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n'
         '. ${IPKG_INSTROOT}/lib/functions.sh\n'
         'default_prerm $0 $@\n')


def build_ipk(binary, outdir, epoch=EPOCH, arch=ARCH, version=VERSION):
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    res = subprocess.run(["bash", MKIPK, binary, arch, version, outdir],
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError("mkipk.sh failed:\n" + res.stderr)
    path = res.stdout.strip().splitlines()[-1]
    return path


def parse_control(text):
    fields, last = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and last:
            fields[last] += "\n" + line
        else:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
            last = key
    return fields


class IpkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.binary = os.path.join(cls.tmp.name, "dma-agent")
        with open(cls.binary, "wb") as f:
            f.write(b"\x7fELF dummy binary " + bytes(range(256)) * 8)
        os.chmod(cls.binary, 0o644)  # mkipk must set 0755 itself
        cls.ipk = build_ipk(cls.binary, os.path.join(cls.tmp.name, "out1"))
        with open(cls.ipk, "rb") as f:
            cls.raw = f.read()
        cls.outer = tarfile.open(fileobj=io.BytesIO(cls.raw), mode="r:gz")
        cls.members = {m.name: m for m in cls.outer.getmembers()}

        def inner(name):
            data = cls.outer.extractfile(name).read()
            return data, tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")

        cls.data_gz, cls.data = inner("./data.tar.gz")
        cls.control_gz, cls.control = inner("./control.tar.gz")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def ctrl_text(self, name):
        return self.control.extractfile("./" + name).read().decode()

    # -- outer container -------------------------------------------------
    def test_file_name(self):
        self.assertEqual(os.path.basename(self.ipk), f"dma-agent_{VERSION}_{ARCH}.ipk")

    def test_outer_is_gzip_tar_not_ar(self):
        self.assertEqual(self.raw[:2], b"\x1f\x8b", "outer archive must be gzip")
        self.assertFalse(self.raw.startswith(b"!<arch>"))

    def test_outer_member_order(self):
        self.assertEqual([m.name for m in self.outer.getmembers()],
                         ["./debian-binary", "./data.tar.gz", "./control.tar.gz"])

    def test_debian_binary(self):
        self.assertEqual(self.outer.extractfile("./debian-binary").read(), b"2.0\n")

    def test_gzip_headers_have_no_name_or_time(self):
        for blob in (self.raw, self.data_gz, self.control_gz):
            flags, mtime = blob[3], int.from_bytes(blob[4:8], "little")
            self.assertEqual(flags & 0x08, 0, "gzip header carries a file name (use gzip -n)")
            self.assertEqual(mtime, 0, "gzip header carries a time stamp (use gzip -n)")

    # -- tar format, ownership, times --------------------------------------
    def all_tars(self):
        return {"outer": self.outer, "data": self.data, "control": self.control}

    def test_gnu_format_no_pax(self):
        for label, blob in (("outer", gzip.decompress(self.raw)),
                            ("data", gzip.decompress(self.data_gz)),
                            ("control", gzip.decompress(self.control_gz))):
            # GNU magic "ustar  \0" at offset 257 of every header; PAX would be "ustar\x0000"
            self.assertEqual(blob[257:265], b"ustar  \x00", f"{label}: not GNU tar format")
            tf = tarfile.open(fileobj=io.BytesIO(blob))
            for m in tf.getmembers():
                self.assertNotIn(m.type, (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE),
                                 f"{label}: PAX header for {m.name}")
                self.assertEqual(m.pax_headers, {}, f"{label}: PAX header for {m.name}")

    def test_numeric_owner_root(self):
        for label, tf in self.all_tars().items():
            for m in tf.getmembers():
                self.assertEqual((m.uid, m.gid), (0, 0), f"{label}:{m.name}")
                self.assertEqual((m.uname, m.gname), ("", ""), f"{label}:{m.name} has names")

    def test_mtime_is_source_date_epoch(self):
        for label, tf in self.all_tars().items():
            for m in tf.getmembers():
                self.assertEqual(m.mtime, int(EPOCH), f"{label}:{m.name}")

    def test_inner_members_sorted(self):
        for tf in (self.data, self.control):
            names = [m.name for m in tf.getmembers()]
            self.assertEqual(names, sorted(names))

    # -- data ------------------------------------------------------------
    def test_data_files_and_modes(self):
        files = {m.name: m for m in self.data.getmembers() if m.isfile()}
        self.assertEqual(
            {n: m.mode for n, m in files.items()},
            {"./usr/bin/dma-agent": 0o755,
             "./usr/libexec/dma-agent/upgrade": 0o755,
             "./etc/init.d/dma-agent": 0o755,
             "./etc/config/dma-agent": 0o600})
        for m in self.data.getmembers():
            if m.isdir():
                self.assertEqual(m.mode, 0o755, m.name)
        self.assertIn(".", [m.name for m in self.data.getmembers()])

    def test_data_contents(self):
        with open(self.binary, "rb") as f:
            self.assertEqual(self.data.extractfile("./usr/bin/dma-agent").read(), f.read())
        files = os.path.join(ROOT, "openwrt", "dma-agent", "files")
        with open(os.path.join(files, "dma-agent.init"), "rb") as f:
            self.assertEqual(self.data.extractfile("./etc/init.d/dma-agent").read(), f.read())
        with open(os.path.join(files, "dma-agent.config"), "rb") as f:
            self.assertEqual(self.data.extractfile("./etc/config/dma-agent").read(), f.read())

    # -- control ---------------------------------------------------------
    def test_control_members(self):
        self.assertEqual(
            {m.name: m.mode for m in self.control.getmembers() if m.isfile()},
            {"./control": 0o644, "./conffiles": 0o644, "./postinst": 0o755, "./prerm": 0o755})

    def test_control_fields(self):
        text = self.ctrl_text("control")
        keys = [l.partition(":")[0] for l in text.splitlines() if not l.startswith(" ")]
        self.assertEqual(keys, CONTROL_FIELDS, "fields missing or out of OpenWrt's order")
        f = parse_control(text)
        self.assertEqual(f["Package"], "dma-agent")
        self.assertEqual(f["Version"], VERSION)
        self.assertEqual(f["Depends"], "libc")
        self.assertEqual(f["SourceName"], "dma-agent")
        self.assertEqual(f["License"], "Apache-2.0")
        self.assertEqual(f["Section"], "net")
        self.assertEqual(f["SourceDateEpoch"], EPOCH)
        self.assertEqual(f["Architecture"], ARCH)
        self.assertTrue(f["Maintainer"])
        self.assertTrue(f["Description"])
        self.assertTrue(text.endswith("\n"))

    def test_installed_size(self):
        size = parse_control(self.ctrl_text("control"))["Installed-Size"]
        self.assertRegex(size, r"^[0-9]+$")
        # ipkg-build: Installed-Size = bytes of the uncompressed data.tar
        self.assertEqual(int(size), len(gzip.decompress(self.data_gz)))
        payload = sum(m.size for m in self.data.getmembers() if m.isfile())
        self.assertGreaterEqual(int(size), payload)

    def test_conffiles(self):
        self.assertEqual(self.ctrl_text("conffiles"), "/etc/config/dma-agent\n")
        for path in self.ctrl_text("conffiles").split():
            self.assertIn("." + path, [m.name for m in self.data.getmembers() if m.isfile()])

    def test_postinst_prerm_are_openwrt_defaults(self):
        self.assertEqual(self.ctrl_text("postinst"), POSTINST)
        self.assertEqual(self.ctrl_text("prerm"), PRERM)

    def test_scripts_are_valid_sh(self):
        for name in ("postinst", "prerm"):
            res = subprocess.run(["sh", "-n"], input=self.ctrl_text(name), text=True)
            self.assertEqual(res.returncode, 0, name)

    def test_postinst_runs_default_postinst(self):
        """With a stand-in /lib/functions.sh the scripts call default_postinst/prerm."""
        with tempfile.TemporaryDirectory() as root:
            os.makedirs(os.path.join(root, "lib"))
            with open(os.path.join(root, "lib", "functions.sh"), "w") as f:
                f.write('default_postinst() { echo "postinst $*"; }\n'
                        'default_prerm() { echo "prerm $*"; }\n')
            for name in ("postinst", "prerm"):
                script = os.path.join(root, name)
                with open(script, "w") as f:
                    f.write(self.ctrl_text(name))
                res = subprocess.run(["sh", script, "configure"], capture_output=True, text=True,
                                     env=dict(os.environ, IPKG_INSTROOT=root))
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(res.stdout, f"{name} {script} configure\n")

    # -- reproducibility ---------------------------------------------------
    def test_reproducible(self):
        again = build_ipk(self.binary, os.path.join(self.tmp.name, "out2"))
        with open(again, "rb") as f:
            self.assertEqual(f.read(), self.raw, "same SOURCE_DATE_EPOCH must give identical bytes")

    def test_epoch_changes_output(self):
        other = build_ipk(self.binary, os.path.join(self.tmp.name, "out3"), epoch="1600000000")
        with open(other, "rb") as f:
            self.assertNotEqual(f.read(), self.raw)

    def test_rejects_bad_arguments(self):
        res = subprocess.run(["bash", MKIPK, self.binary, ARCH], capture_output=True, text=True)
        self.assertNotEqual(res.returncode, 0)
        res = subprocess.run(["bash", MKIPK, "/nonexistent", ARCH, VERSION, self.tmp.name],
                             capture_output=True, text=True)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("not found", res.stderr)


if __name__ == "__main__":
    unittest.main()
