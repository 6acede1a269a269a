#!/usr/bin/env python3
"""Port 25 (the MX listener): with and without STARTTLS, what EHLO
offers, no AUTH, local recipients only (never an open relay, whatever
the address looks like), unknown users refused at RCPT."""
import re
import smtplib
import ssl
import time

import mgsystem
from mgsystem import HOSTNAME, SystemTestCase, make_message

RELAY_ATTEMPTS = [
    # (RCPT argument, why it must not be relayed)
    "<bob@other.test>",                   # plain relay
    "<BOB@Other.Test>",
    "<bob%other.test@example.test>",      # percent hack: a local part here
    "<@example.test:bob@other.test>",     # source route: ignored, other.test remains
    '<"bob@other.test"@example.test>',    # quoted local part with @
    '<"bob@other.test">',                 # no domain at all
    "<bob@example.test.>",                # our domain with a trailing dot
    "<bob@other.test.>",
    "<bob@[192.0.2.1]>",                  # address literal
    "<bob@example.test@other.test>",
    "<bob!other.test@example.test>",      # UUCP bang path
    "<x@mail.example.test>",              # our host name is not a mail domain
]


class SmtpPolicy(SystemTestCase):

    def test_ehlo_plain_offers_starttls_not_auth(self):
        with self.server.mx() as c:
            self.assertTrue(c.has_extn("starttls"))
            self.assertFalse(c.has_extn("auth"))
            for ext in ("pipelining", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking",
                        "dsn"):
                self.assertTrue(c.has_extn(ext), ext)
            self.assertEqual(int(c.esmtp_features["size"]), 50 * 1024 * 1024)
            # AUTH is refused even when asked for.
            code, text = c.docmd("AUTH", "PLAIN AGJvYkBleGFtcGxlLnRlc3QAeA==")
            self.assertEqual(code, 503, text)
            self.assertTrue(text.startswith(b"5.5.1"), text)

    def test_ehlo_after_starttls(self):
        with self.server.mx(starttls=True) as c:
            self.assertFalse(c.has_extn("starttls"))
            self.assertFalse(c.has_extn("auth"))
            self.assertIsInstance(c.sock, ssl.SSLSocket)
            code, _ = c.docmd("STARTTLS")
            self.assertEqual(code, 503)

    def received(self, user, n):
        self.assertEqual(self.server.wait_delivered(user, n), n)
        return self.server.fetch_all(user)[n - 1]

    def test_delivery_plaintext(self):
        msg = make_message(subject="plain")
        qid = self.server.mx_send("bob", msg)
        raw = self.received("bob", 1)
        self.assertTrue(raw.startswith(b"Return-Path: <sender@remote.test>\r\n"
                                       b"Delivered-To: bob@example.test\r\n"), raw[:200])
        self.assertRegex(raw, rb"Received: from mx\.remote\.test \(\[127\.0\.0\.1\]\)\r\n"
                              rb"\tby " + re.escape(HOSTNAME.encode()) +
                              rb" \(Mailgenic\) with ESMTP id " + qid.encode() +
                              rb"\r\n\tfor <bob@example\.test>; ")
        self.assertNotIn(b"(using TLS", raw)
        # Port 25 adds nothing to the message: the sender's own header.
        self.assertTrue(raw.endswith(msg))

    def test_delivery_starttls(self):
        msg = make_message(subject="tls")
        qid = self.server.mx_send("bob", msg, starttls=True)
        raw = self.received("bob", 1)
        self.assertRegex(raw, rb"with ESMTPS id " + qid.encode() +
                              rb"\r\n\t\(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)\r\n\tfor <bob@")
        self.assertTrue(raw.endswith(msg))

    def test_helo_is_plain_smtp(self):
        with smtplib.SMTP("127.0.0.1", self.server.smtp_port, timeout=30) as c:
            code, _ = c.helo("old.remote.test")
            self.assertEqual(code, 250)
            c.mail("sender@remote.test")
            self.assertEqual(c.rcpt("bob@example.test")[0], 250)
            code, text = c.data(make_message())
            self.assertEqual(code, 250, text)
        raw = self.received("bob", 1)
        self.assertIn(b"Received: from old.remote.test ([127.0.0.1])\r\n", raw)
        self.assertIn(b" with SMTP id ", raw)

    def test_unknown_recipient(self):
        with self.server.mx() as c:
            c.mail("sender@remote.test")
            code, text = c.rcpt("nobody@example.test")
            self.assertEqual(code, 550)
            self.assertTrue(text.startswith(b"5.1.1"), text)
            # The session goes on: a good recipient after a bad one.
            self.assertEqual(c.rcpt("bob@example.test")[0], 250)
            code, text = c.data(make_message())
            self.assertEqual(code, 250)
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertRegex(self.server.smtpd_log(),
                         r"unknown recipient session=\S+ remote=127\.0\.0\.1 to=nobody@example\.test")

    def test_never_an_open_relay(self):
        with self.server.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<spammer@remote.test>", 250)
            for rcpt in RELAY_ATTEMPTS:
                code, lines = r.cmd("RCPT TO:" + rcpt)
                self.assertIn(code, (501, 550, 553, 554), f"{rcpt}: {code} {lines}")
                if code == 554:
                    self.assertTrue(lines[0].startswith("5.7.1"), lines)
            # Nothing was accepted: DATA has no recipient.
            code, _ = r.cmd("DATA")
            self.assertEqual(code, 554)
        self.assertIn("relay denied", self.server.smtpd_log())
        self.assertEqual(self.server.queue_files(), [])

    def test_relay_with_a_local_recipient_alongside(self):
        # A local recipient does not open the door for a remote one.
        with self.server.mx() as c:
            c.mail("spammer@remote.test")
            self.assertEqual(c.rcpt("bob@example.test")[0], 250)
            code, text = c.rcpt("victim@other.test")
            self.assertEqual(code, 554, text)
            self.assertTrue(text.startswith(b"5.7.1"))
            c.data(make_message())
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertTrue(self.server.wait_queue_empty())

    def test_postmaster_without_domain(self):
        # RFC 5321 section 4.5.1: "postmaster" must be accepted; it is
        # the postmaster of the domain the host name belongs to.
        self.server.mgadm("alias", "add", "postmaster@example.test", "bob@example.test")
        with self.server.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<someone@remote.test>", 250)
            r.expect("RCPT TO:<Postmaster>", 250)
            r.expect("DATA", 354)
            r.send(b"Subject: to the postmaster\r\n\r\nHello.\r\n.\r\n")
            self.assertEqual(r.reply()[0], 250)
        raw = self.received("bob", 1)
        self.assertIn(b"Subject: to the postmaster", raw)

    def test_postmaster_of_a_new_domain(self):
        # RFC 5321 section 4.5.1: postmaster@ a domain we serve is accepted
        # without any alias: it reaches the domain's first user.
        self.server.mgadm("domain", "add", "pm.test")
        with self.server.mx() as c:
            c.mail("someone@remote.test")
            self.assertEqual(c.rcpt("postmaster@pm.test")[0], 550)
        first = self.server.add_user("first@pm.test")
        self.server.add_user("second@pm.test")
        self.assertEqual(self.server.mgadm("resolve", "postmaster@pm.test").stdout.strip(), first)
        with self.server.mx() as c:
            c.mail("someone@remote.test")
            self.assertEqual(c.rcpt("PostMaster@pm.test")[0], 250)
            c.data(make_message(subject="to the new postmaster"))
        raw = self.received(first, 1)
        self.assertIn(b"Subject: to the new postmaster", raw)
        self.assertEqual(self.server.maildir_count("second@pm.test"), 0)

    def test_mail_before_ehlo_and_rcpt_before_mail(self):
        with self.server.raw_smtp() as r:
            self.assertEqual(r.cmd("MAIL FROM:<a@remote.test>")[0], 503)
            r.ehlo()
            self.assertEqual(r.cmd("RCPT TO:<bob@example.test>")[0], 503)
            self.assertEqual(r.cmd("DATA")[0], 503)
            r.expect("MAIL FROM:<a@remote.test>", 250)
            self.assertEqual(r.cmd("MAIL FROM:<a@remote.test>")[0], 503)
            self.assertEqual(r.cmd("DATA")[0], 554)   # no valid recipients
            r.expect("RSET", 250)
            r.expect("QUIT", 221)

    def test_null_sender_accepted(self):
        # Bounces from elsewhere come with MAIL FROM:<>.
        with self.server.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<>", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            r.expect("DATA", 354)
            r.send(b"Subject: bounce\r\n\r\nReturned.\r\n.\r\n")
            self.assertEqual(r.reply()[0], 250)
        raw = self.received("bob", 1)
        self.assertTrue(raw.startswith(b"Return-Path: <>\r\n"), raw[:100])

    def test_starttls_discards_pipelined_plaintext(self):
        # CVE-2011-0411: commands sent with STARTTLS in one packet are not
        # run after the handshake.
        with self.server.raw_smtp() as r:
            r.ehlo()
            r.send(b"STARTTLS\r\nRSET\r\n")
            self.assertEqual(r.reply()[0], 220)
            tls = self.server.client_context().wrap_socket(r.sock, server_hostname="localhost")
            r.sock = tls
            self.assertEqual(r.buf, b"")
            # The first answer over TLS is to our EHLO, not to the RSET.
            code, lines = r.cmd("EHLO again.remote.test")
            self.assertEqual(code, 250, lines)
            self.assertNotIn("STARTTLS", lines)


if __name__ == "__main__":
    mgsystem.main()
