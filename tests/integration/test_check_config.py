#!/usr/bin/env python3
"""--check-config finds what start-up would refuse, not only what the file
parser does: certificates and keys, the TLS policy, routes, the relay
host's password file, endpoints, the users to switch to, mgauthd's
program. A check that passes means a daemon that starts."""
import os
import shutil
import subprocess
import tempfile
import unittest

import mgsystem
from mgsystem import MGSMTPD
from mgtest import MGIMAPD


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mgcheck.")
        self.system = mgsystem.System(self.tmp, users=[])

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, program, **kv):
        if kv:
            self.system.reconfigure(**kv)
        return subprocess.run([program, "-c", self.system.conf_path, "--check-config"],
                              capture_output=True, text=True, timeout=60)

    def assert_valid(self, program):
        r = self.check(program)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("is valid", r.stdout)
        self.assertEqual(r.stderr, "")

    def assert_refused(self, program, words, **kv):
        r = self.check(program, **kv)
        self.assertEqual(r.returncode, 1, f"{kv}: {r.stdout}{r.stderr}")
        self.assertNotIn("is valid", r.stdout)
        for word in words:
            self.assertIn(word, r.stderr, kv)
        # The same file stops the daemon at start, which is the point.
        return r

    def test_valid(self):
        self.assert_valid(MGIMAPD)
        self.assert_valid(MGSMTPD)

    def test_certificates(self):
        missing = os.path.join(self.tmp, "missing.pem")
        for program in (MGIMAPD, MGSMTPD):
            self.assert_refused(program, ["missing.pem"], tls__cert_file=missing)
            self.system.reconfigure(tls__cert_file=self.system.cert)
        # A key that is not the certificate's.
        other = os.path.join(self.tmp, "other-key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", other], check=True, capture_output=True)
        for program in (MGIMAPD, MGSMTPD):
            self.assert_refused(program, [], tls__key_file=other)

    def test_tls_policy(self):
        for program in (MGIMAPD, MGSMTPD):
            self.assert_refused(program, ["cipher"], tls__ciphers="NO-SUCH-CIPHER")
            self.system.reconfigure(tls__ciphers="")
            self.assert_refused(program, ["min_version"], tls__min_version="bogus")
            self.system.conf_extra.pop("tls.min_version")
            self.system.write_conf()
            self.assert_valid(program)

    def test_relay_settings(self):
        self.assert_refused(MGSMTPD, ["transport"], relay__transport="example.com => [::1")
        self.system.conf_extra.pop("relay.transport")
        self.assert_refused(MGSMTPD, ["relayhost_password_file"], relay__relayhost_user="me")
        secret = os.path.join(self.tmp, "relay.secret")
        self.assert_refused(MGSMTPD, ["relay.secret"], relay__relayhost_password_file=secret)
        with open(secret, "w") as f:
            f.write("s3cret\n")
        os.chmod(secret, 0o600)
        self.assert_valid(MGSMTPD)

    def test_users(self):
        self.assert_refused(MGIMAPD, ["no-such-user-mg"], mda__user="no-such-user-mg")
        self.system.reconfigure(mda__user="")
        self.assert_refused(MGIMAPD, ["no-such-user-mg"], auth__user="no-such-user-mg")
        self.system.reconfigure(auth__user="")
        self.assert_refused(MGSMTPD, ["no-such-user-mg"], mta__user="no-such-user-mg")

    def test_auth_program(self):
        self.assert_refused(MGIMAPD, ["nonexistent-mgauthd"],
                            auth__program=os.path.join(self.tmp, "nonexistent-mgauthd"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
