#!/usr/bin/env python3
"""Submission on port 465 with real clients (swaks with AUTH PLAIN and
LOGIN, msmtp, smtplib): the message read back over IMAPS must be exactly
Return-Path + Delivered-To + Received + (Message-ID, Date when missing) +
the bytes the client submitted."""
import email.utils
import os
import re
import shutil
import subprocess
import time
import unittest

import mgsystem
from mgsystem import HOSTNAME, SystemTestCase

RECEIVED_RE = re.compile(
    rb"^Received: from (?P<helo>[^ ]+) \(\[127\.0\.0\.1\]\)\r\n"
    rb"\tby " + re.escape(HOSTNAME.encode()) + rb" \(Mailgenic\) with (?P<proto>ESMTPS?A?) "
    rb"id (?P<id>[0-9A-Z]{16})\r\n"
    rb"\t\(using (?P<tls>TLSv1\.[23]) with cipher (?P<cipher>[A-Za-z0-9_-]+)\)\r\n"
    rb"\tfor <(?P<rcpt>[^>]+)>; (?P<date>[^\r\n]+)\r\n")


def body_text():
    # Dot-stuffing, a long line, 8-bit text, trailing spaces and an empty
    # line before the end: all must survive byte for byte.
    return ("First line.\r\n"
            ".a line that starts with a dot\r\n"
            "..two dots\r\n"
            "trailing spaces   \r\n"
            + "x" * 900 + "\r\n"
            "Gr\u00fc\u00dfe aus K\u00f6ln\r\n"
            "\r\n"
            "last line\r\n").encode()


def message(subject, with_id=True, with_date=True, frm="alice@example.test"):
    head = [f"From: Alice <{frm}>", "To: Bob <bob@example.test>", f"Subject: {subject}",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit"]
    if with_date:
        head.append("Date: Mon, 7 Feb 1994 21:52:25 -0800")
    if with_id:
        head.append(f"Message-ID: <{subject.replace(' ', '-')}@client.test>")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body_text()


class SubmissionClients(SystemTestCase):

    def check_delivered(self, raw, submitted, sender, rcpt, helo=None, added_id=False,
                        added_date=False):
        """raw (BODY[]) is the trace fields, the added fields and then
        exactly the submitted bytes. Returns the queue ID in Received."""
        prefix = f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode()
        self.assertTrue(raw.startswith(prefix), raw[:300])
        rest = raw[len(prefix):]
        m = RECEIVED_RE.match(rest)
        self.assertIsNotNone(m, f"Received field has the wrong shape: {rest[:400]!r}")
        self.assertEqual(m.group("proto"), b"ESMTPSA")
        if helo is not None:
            self.assertEqual(m.group("helo").decode(), helo)
        self.assertEqual(m.group("rcpt").decode(), rcpt)
        when = email.utils.parsedate_to_datetime(m.group("date").decode())
        self.assertLess(abs(time.time() - when.timestamp()), 120, m.group("date"))
        qid = m.group("id").decode()
        rest = rest[m.end():]
        if added_id:
            line = f"Message-ID: <{qid}@{HOSTNAME}>\r\n".encode()
            self.assertTrue(rest.startswith(line), rest[:200])
            rest = rest[len(line):]
        if added_date:
            dm = re.match(rb"Date: ([^\r\n]+)\r\n", rest)
            self.assertIsNotNone(dm, rest[:200])
            added = email.utils.parsedate_to_datetime(dm.group(1).decode())
            self.assertLess(abs(time.time() - added.timestamp()), 120)
            rest = rest[dm.end():]
        self.assertEqual(rest, submitted)
        return qid

    def only_message(self, user):
        self.assertEqual(self.server.wait_delivered(user, 1), 1)
        msgs = self.server.fetch_all(user)
        self.assertEqual(len(msgs), 1)
        return msgs[0]

    def smtpd_queue_id_logged(self, qid):
        # The ID of the Received field is the one of the queue and the logs.
        log = self.server.smtpd_log()
        self.assertRegex(log, rf"{qid} accepted session=\S+ remote=127\.0\.0\.1 from=alice@example\.test")
        self.assertIsNotNone(self.server.wait_smtpd_log(rf"{qid} to=bob@example\.test .*status=sent"))

    def swaks_file(self, msg):
        # swaks ends the data with CR LF "." CR LF after the last line it
        # read, so the file holds the message without its last line end.
        path = os.path.join(self.tmp, "msg.eml")
        with open(path, "wb") as f:
            f.write(msg[:-2])
        return path

    def swaks(self, auth, msg_path):
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(self.server.submission_port),
             "--tls-on-connect", "--auth", auth, "--auth-user", "alice@example.test",
             "--auth-password", self.server.password("alice"), "--from", "alice@example.test",
             "--to", "bob@example.test", "--helo", "swaks.client.test", "--data", "@" + msg_path],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"<~ +250 2\.0\.0 Ok: queued as ([0-9A-Z]{16})", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        # The mechanism was really used.
        self.assertIn(f"~> AUTH {auth}", r.stdout)
        return m.group(1)

    @unittest.skipUnless(shutil.which("swaks"), "swaks is not installed")
    def test_swaks_plain(self):
        msg = message("swaks plain")
        path = self.swaks_file(msg)
        qid = self.swaks("PLAIN", path)
        raw = self.only_message("bob")
        self.assertEqual(self.check_delivered(raw, msg, "alice@example.test", "bob@example.test",
                                              helo="swaks.client.test"), qid)
        self.smtpd_queue_id_logged(qid)

    @unittest.skipUnless(shutil.which("swaks"), "swaks is not installed")
    def test_swaks_login_adds_message_id_and_date(self):
        msg = message("swaks login", with_id=False, with_date=False)
        path = self.swaks_file(msg)
        qid = self.swaks("LOGIN", path)
        raw = self.only_message("bob")
        self.assertEqual(self.check_delivered(raw, msg, "alice@example.test", "bob@example.test",
                                              added_id=True, added_date=True), qid)
        self.assertIn(f"login session=", self.server.smtpd_log())

    @unittest.skipUnless(shutil.which("msmtp"), "msmtp is not installed")
    def test_msmtp(self):
        rc = os.path.join(self.tmp, "msmtprc")
        with open(rc, "w") as f:
            f.write(f"""defaults
logfile {self.tmp}/msmtp.log
account test
host 127.0.0.1
port {self.server.submission_port}
domain msmtp.client.test
tls on
tls_starttls off
tls_trust_file {self.server.cert}
auth on
user alice@example.test
password {self.server.password("alice")}
from alice@example.test
set_msgid_header off
set_date_header off
account default : test
""")
        os.chmod(rc, 0o600)
        # Neither Date nor Message-ID: mgsmtpd adds both (msmtp is told
        # not to).
        msg = message("msmtp", with_id=False, with_date=False)
        r = subprocess.run(["msmtp", "-C", rc, "bob@example.test"], input=msg,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        raw = self.only_message("bob")
        qid = self.check_delivered(raw, msg, "alice@example.test", "bob@example.test",
                                   helo="msmtp.client.test", added_id=True, added_date=True)
        with open(os.path.join(self.tmp, "msmtp.log")) as f:
            self.assertIn(f"queued as {qid}", f.read())

    def test_smtplib(self):
        msg = message("smtplib", with_date=False)
        qid = self.server.submit("alice", "bob", msg)
        raw = self.only_message("bob")
        self.assertEqual(self.check_delivered(raw, msg, "alice@example.test", "bob@example.test",
                                              helo="client.example.test", added_date=True), qid)
        self.smtpd_queue_id_logged(qid)
        # The TLS facts in Received are the session's.
        m = RECEIVED_RE.match(raw[raw.index(b"Received:"):])
        with self.server.submission("alice") as c:
            self.assertEqual(c.sock.version(), m.group("tls").decode())
            self.assertEqual(c.sock.cipher()[0], m.group("cipher").decode())

    def test_date_in_the_body_does_not_count(self):
        # A "Date:" or "Message-ID:" line in the body (a forwarded message
        # quoted inline) is not the header's: both are still added.
        msg = (b"From: alice@example.test\r\nSubject: fwd\r\n\r\n"
               b"---------- Forwarded message ----------\r\n"
               b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <old@x.test>\r\n\r\nhi\r\n")
        self.server.submit("alice", "bob", msg)
        raw = self.only_message("bob")
        self.check_delivered(raw, msg, "alice@example.test", "bob@example.test",
                             added_id=True, added_date=True)

    def test_smtplib_two_recipients_one_copy_each(self):
        msg = message("two")
        self.server.submit("alice", ["bob", "carol"], msg)
        for user in ("bob", "carol"):
            raw = self.only_message(user)
            prefix = f"Return-Path: <alice@example.test>\r\nDelivered-To: {user}@example.test\r\n"
            self.assertTrue(raw.startswith(prefix.encode()), raw[:200])
            # Several recipients: no "for <...>" (it would disclose Bcc).
            received = raw[len(prefix):raw.index(b"From: ")]
            self.assertNotIn(b"for <", received)
            self.assertTrue(raw.endswith(msg))


SubmissionClients.users = ["alice", "bob", "carol"]

if __name__ == "__main__":
    mgsystem.main()
