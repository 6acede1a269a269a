#!/usr/bin/env python3
"""Port 465 (submission): AUTH before MAIL, failed logins (delay, limit),
which senders a user may use, and relay for authenticated users."""
import base64
import smtplib
import time

import mgsystem
from mgsystem import SystemTestCase, make_message

DELAY = 1.0


class SubmissionPolicy(SystemTestCase):
    conf = {"submission.auth_failure_delay": f"{int(DELAY * 1000)}ms",
            "submission.max_auth_failures": "3"}

    def setUp(self):
        super().setUp()
        # An alias that reaches alice (and bob): alice may send from it.
        self.server.mgadm("alias", "add", "sales@example.test", "alice@example.test",
                          "bob@example.test")
        self.server.mgadm("alias", "add", "bobs-list@example.test", "bob@example.test")

    def test_ehlo_offers_auth_not_starttls(self):
        with self.server.submission() as c:
            self.assertTrue(c.has_extn("auth"))
            self.assertEqual(sorted(c.esmtp_features["auth"].split()), ["LOGIN", "PLAIN"])
            self.assertFalse(c.has_extn("starttls"))

    def test_mail_without_auth(self):
        with self.server.submission() as c:
            code, text = c.mail("alice@example.test")
            self.assertEqual(code, 530, text)
            self.assertTrue(text.startswith(b"5.7.0"), text)
            # Nothing else works either.
            code, _ = c.rcpt("bob@example.test")
            self.assertEqual(code, 503)

    def test_wrong_password_is_delayed_then_closed(self):
        with self.server.raw_smtp("submission") as r:
            r.ehlo()
            token = base64.b64encode(b"\0alice@example.test\0wrong").decode()
            for attempt in range(3):
                t0 = time.monotonic()
                code, lines = r.cmd(f"AUTH PLAIN {token}")
                took = time.monotonic() - t0
                self.assertEqual(code, 535, lines)
                self.assertTrue(lines[0].startswith("5.7.8"), lines)
                self.assertGreaterEqual(took, DELAY * 0.9, f"attempt {attempt}: no delay")
            # The third failure ends the session.
            self.assertTrue(r.is_closed())
        self.assertIn("too many failed logins", self.server.smtpd_log())
        self.assertRegex(self.server.smtpd_log(),
                         r"login failed session=\S+ user=alice@example\.test remote=127\.0\.0\.1 "
                         r"reason=password")
        # The password never reaches a log.
        self.assertNotIn("wrong", self.server.smtpd_log().replace("wrong password", ""))

    def test_login_after_a_failure(self):
        with self.server.submission() as c:
            with self.assertRaises(smtplib.SMTPAuthenticationError):
                c.login("alice@example.test", "not the password")
            c.login("alice@example.test", self.server.password("alice"))
            qid = self.server.transaction(c, "alice@example.test", ["bob@example.test"],
                                          make_message(frm="alice@example.test"))
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertRegex(self.server.smtpd_log(), rf"{qid} accepted .* user=alice@example\.test")

    def test_auth_login_mechanism(self):
        with self.server.raw_smtp("submission") as r:
            r.ehlo()
            r.expect("AUTH LOGIN", 334)
            r.expect(base64.b64encode(b"alice@example.test").decode(), 334)
            r.expect(base64.b64encode(self.server.password("alice").encode()).decode(), 235)
            r.expect("MAIL FROM:<alice@example.test>", 250)

    def sender(self, address):
        """MAIL FROM as alice: (code, text)."""
        with self.server.submission("alice") as c:
            return c.mail(address)

    def test_sender_must_be_owned(self):
        for address in ("bob@example.test", "bobs-list@example.test", "alice@other.test",
                        "nobody@example.test", "bob+alice@example.test", "alicex@example.test",
                        "ALICE@example.test.evil", ""):
            code, text = self.sender(address)
            self.assertEqual(code, 553, f"{address!r}: {code} {text}")
            self.assertTrue(text.startswith(b"5.7.1"), text)
        self.assertIn("sender refused", self.server.smtpd_log())

    def test_sender_owned(self):
        for address in ("alice@example.test", "Alice@Example.Test", "alice+lists@example.test",
                        "sales@example.test"):
            code, text = self.sender(address)
            self.assertEqual(code, 250, f"{address}: {text}")
        # And the mail goes through with such a sender.
        self.server.submit("alice", "bob", make_message(frm="sales@example.test"),
                           sender="sales@example.test")
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertTrue(self.server.fetch_all("bob")[0].startswith(b"Return-Path: <sales@example.test>"))

    def test_unknown_local_recipient(self):
        with self.server.submission("alice") as c:
            c.mail("alice@example.test")
            code, text = c.rcpt("nobody@example.test")
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith(b"5.1.1"), text)

    def test_authenticated_relay_is_queued(self):
        # Remote recipients are accepted from users and wait for the relay.
        qid = self.server.submit("alice", ["friend@other.test", "bob"],
                                 make_message(frm="alice@example.test", to="friend@other.test"))
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        listing = self.server.mgqueue("list").stdout
        self.assertIn(qid, listing)
        self.assertIn("friend@other.test", listing)
        self.assertNotIn("bob@example.test", listing)


if __name__ == "__main__":
    mgsystem.main()
