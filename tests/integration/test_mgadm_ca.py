#!/usr/bin/python3
"""mgadm ca: the private CA of the links between Mailgenic hosts.

Creates a CA and host certificates the way an operator would, checks them
with openssl(1) (chain, names, purposes, file modes), and checks that
mistakes fail without changing anything: a second init, a second issue of
one name, bad names, no CA.
"""
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

BIN_DIR = os.environ.get("MG_TEST_BIN_DIR", os.path.join(os.getcwd(), "bin"))
MGADM = os.path.join(BIN_DIR, "mgadm")


class MgadmCaTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mgadm-ca.")
        self.ca_dir = os.path.join(self.tmp, "ca")
        self.conf = os.path.join(self.tmp, "mailgenic.conf")
        with open(self.conf, "w") as f:
            f.write("hostname = mx.example.test\n"
                    f"[userdb]\npath = {self.tmp}/userdb\n"
                    f"[cluster]\nca_dir = {self.ca_dir}\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mgadm(self, *args, env=None):
        full_env = dict(os.environ)
        full_env.pop("MG_CA_DIR", None)
        full_env.update(env or {})
        return subprocess.run([MGADM, "-c", self.conf] + list(args), env=full_env,
                              capture_output=True, text=True, timeout=60)

    def openssl(self, *args):
        return subprocess.run(["openssl"] + list(args), capture_output=True, text=True,
                              timeout=60)

    @staticmethod
    def read(path):
        with open(path) as f:
            return f.read()

    def listing(self):
        return sorted(os.listdir(self.ca_dir))

    def test_init_issue_verify(self):
        r = self.mgadm("ca", "init")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Mailgenic CA mx.example.test", r.stdout)
        self.assertEqual(stat.S_IMODE(os.stat(self.ca_dir).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(f"{self.ca_dir}/ca.key").st_mode), 0o600)
        text = self.openssl("x509", "-in", f"{self.ca_dir}/ca.crt", "-noout", "-text").stdout
        self.assertIn("CA:TRUE", text)
        self.assertIn("Certificate Sign", text)

        r = self.mgadm("ca", "issue", "imap.internal", "10.0.0.2", "fd00::2")
        self.assertEqual(r.returncode, 0, r.stderr)
        crt, key = f"{self.ca_dir}/imap.internal.crt", f"{self.ca_dir}/imap.internal.key"
        self.assertEqual(r.stdout.split(), [crt, key])
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)
        for purpose in ("sslserver", "sslclient"):
            v = self.openssl("verify", "-purpose", purpose, "-CAfile",
                             f"{self.ca_dir}/ca.crt", crt)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        for name, flag in (("imap.internal", "-verify_hostname"), ("10.0.0.2", "-verify_ip"),
                           ("fd00::2", "-verify_ip")):
            v = self.openssl("verify", flag, name, "-CAfile", f"{self.ca_dir}/ca.crt", crt)
            self.assertEqual(v.returncode, 0, f"{name}: {v.stdout}{v.stderr}")
        v = self.openssl("verify", "-verify_hostname", "other.internal", "-CAfile",
                         f"{self.ca_dir}/ca.crt", crt)
        self.assertNotEqual(v.returncode, 0)
        # the key belongs to the certificate
        pub_crt = self.openssl("x509", "-in", crt, "-noout", "-pubkey").stdout
        pub_key = self.openssl("pkey", "-in", key, "-pubout").stdout
        self.assertEqual(pub_crt, pub_key)

        r = self.mgadm("ca", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ca (the CA)"), r.stdout)
        self.assertIn("names imap.internal,10.0.0.2,fd00::2", lines[1])

    def test_mistakes_change_nothing(self):
        r = self.mgadm("ca", "issue", "imap.internal")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no CA in", r.stderr)
        self.assertEqual(self.mgadm("ca", "init", "Test CA").returncode, 0)
        ca_before = self.read(f"{self.ca_dir}/ca.crt")
        r = self.mgadm("ca", "init")
        self.assertEqual(r.returncode, 1)
        self.assertIn("a CA exists already", r.stderr)
        self.assertEqual(self.read(f"{self.ca_dir}/ca.crt"), ca_before)

        self.assertEqual(self.mgadm("ca", "issue", "smtp.internal").returncode, 0)
        before = self.listing()
        crt_before = self.read(f"{self.ca_dir}/smtp.internal.crt")
        r = self.mgadm("ca", "issue", "smtp.internal")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists already", r.stderr)
        self.assertEqual(self.read(f"{self.ca_dir}/smtp.internal.crt"), crt_before)
        for bad in ("../etc/x", "a b", "-x", "", "x" * 65):
            r = self.mgadm("ca", "issue", "--", bad)
            self.assertEqual(r.returncode, 2, f"{bad!r}: {r.stderr}")
        self.assertEqual(self.listing(), before)

    def test_env_overrides_directory(self):
        other = os.path.join(self.tmp, "other")
        r = self.mgadm("ca", "init", env={"MG_CA_DIR": other})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(f"{other}/ca.key"))
        self.assertFalse(os.path.exists(self.ca_dir))


if __name__ == "__main__":
    unittest.main(verbosity=2)
