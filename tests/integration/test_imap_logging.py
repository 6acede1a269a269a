#!/usr/bin/python3
"""What mgimapd logs about sessions: one line per login (user, address, TLS
version and cipher), per logout (bytes in and out, duration), per failed
login; and that no password (plain or base64) ever reaches the log or any
file of the state directory, even at log_level debug."""
import base64
import os
import re
import time

import mgtest


class TestLogging(mgtest.MgTestCase):
    log_level = "debug"
    conf = {"imap.auth_failure_delay": "0"}

    def log_lines(self, regex):
        return [l for l in self.server.log().splitlines() if re.search(regex, l)]

    def wait_lines(self, regex, n, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.log_lines(regex)
            if len(lines) >= n:
                return lines
            time.sleep(0.05)
        return self.log_lines(regex)

    def test_login_logout_lines(self):
        user = self.server.address("alice")
        c = self.raw()
        c.ok("SELECT INBOX")
        c.ok('ID ("name" "Test \\"Client\\"" "version" "1.0")')
        c.ok("LOGOUT")
        c.close()
        logins = self.wait_lines(r" imap: login session=", 1)
        self.assertEqual(len(logins), 1, logins)
        self.assertRegex(logins[0], rf"user={re.escape(user)} remote=127\.0\.0\.1 "
                                    r"tls=TLSv1\.[23] cipher=\S+")
        session = re.search(r"session=(\S+)", logins[0]).group(1)
        logouts = self.wait_lines(r" imap: logout session=", 1)
        self.assertEqual(len(logouts), 1, logouts)
        self.assertIn(f"session={session} ", logouts[0])
        m = re.search(r"in=(\d+) out=(\d+) duration=(\d+)s", logouts[0])
        self.assertIsNotNone(m, logouts[0])
        self.assertGreater(int(m.group(1)), 30)
        self.assertGreater(int(m.group(2)), 100)
        ids = self.log_lines(r"client id session=" + re.escape(session))
        self.assertEqual(len(ids), 1)
        self.assertIn("version=1.0", ids[0])
        # A second session, closed by the client without LOGOUT.
        d = self.raw()
        d.close()
        logouts = self.wait_lines(r" imap: logout session=", 2)
        self.assertEqual(len(logouts), 2, logouts)

    def test_failed_logins(self):
        user = self.server.address("alice")
        c = self.raw(login=False)
        _, tagged = c.command(f"LOGIN {user} wrong-password-1")
        self.assertIn(b"AUTHENTICATIONFAILED", tagged)
        _, tagged = c.command('LOGIN "no body@example.test" x')
        lines = self.wait_lines(r" imap: login failed session=", 2)
        self.assertEqual(len(lines), 2, lines)
        self.assertIn(f"user={user} remote=127.0.0.1", lines[0])
        # The user name from the network is quoted, not trusted.
        self.assertIn('user="no body@example.test"', lines[1])
        self.assertNotIn("wrong-password-1", self.server.log())

    def test_password_never_stored(self):
        secret_login = "Login-Secret-" + os.urandom(8).hex()
        secret_auth = "Auth Secret \"quoted\" " + os.urandom(8).hex()
        self.server.mgadm("user", "passwd", self.server.address("alice"), "--password-stdin",
                          input=secret_login + "\n")
        self.server.mgadm("user", "passwd", self.server.address("bob"), "--password-stdin",
                          input=secret_auth + "\n")
        alice, bob = self.server.address("alice"), self.server.address("bob")
        # LOGIN with a quoted string and with a literal; AUTHENTICATE with
        # SASL-IR and with a continuation; failures too.
        c = self.raw(login=False)
        c.login(alice, secret_login)
        c.ok("SELECT INBOX")
        c.append("INBOX", mgtest.make_message())
        c.ok("LOGOUT")
        c = self.raw(login=False)
        pw = secret_login.encode()
        c.send(b"L1 LOGIN " + alice.encode() + b" {%d}\r\n" % len(pw))
        c.read_response()
        c.send(pw + b"\r\n")
        _, tagged = c.read_until_tagged("L1")
        self.assertRegex(tagged, rb"^L1 OK")
        blob = base64.b64encode(f"\0{bob}\0{secret_auth}".encode()).decode()
        d = self.raw(login=False)
        d.ok(f"AUTHENTICATE PLAIN {blob}")
        e = self.raw(login=False)
        e.send(b"A1 AUTHENTICATE PLAIN\r\n")
        e.read_response()
        e.send(blob.encode() + b"\r\n")
        _, tagged = e.read_until_tagged("A1")
        self.assertRegex(tagged, rb"^A1 OK")
        f = self.raw(login=False)
        wrong = secret_auth + "-wrong"
        f.command(f"LOGIN {bob} {mgtest.quote(wrong)}")
        wrong_blob = base64.b64encode(f"\0{bob}\0{wrong}".encode()).decode()
        f.command(f"AUTHENTICATE PLAIN {wrong_blob}")
        # Deliveries and a restart write more state.
        self.deliver(["alice", "bob"], mgtest.make_message())
        for x in (c, d, e, f):
            x.close()
        self.server.restart()
        self.server.stop()
        needles = [secret_login, secret_auth, wrong, blob, wrong_blob,
                   secret_auth.replace('"', '\\"')]
        checked = 0
        for root, _, files in os.walk(self.server.state):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                checked += 1
                for needle in needles:
                    self.assertNotIn(needle.encode(), data, f"{needle!r} in {path}")
        self.assertGreater(checked, 20)
        self.assertTrue(os.path.exists(self.server.log_path))
        # The log did cover those sessions.
        self.assertGreaterEqual(len(self.log_lines(r" imap: login session=")), 4)
        self.assertGreaterEqual(len(self.log_lines(r" imap: login failed ")), 2)


if __name__ == "__main__":
    mgtest.main()
