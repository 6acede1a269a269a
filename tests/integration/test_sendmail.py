#!/usr/bin/env python3
"""mgsendmail, the sendmail(8) interface: recipients from arguments or
from the header (-t), Bcc removed, -i, -f, -F, the lone dot, exit codes,
and the Received field naming the local user."""
import email
import email.policy
import pwd
import os
import re

import mgsystem
from mgsystem import HOSTNAME, SystemTestCase

ME = pwd.getpwuid(os.getuid()).pw_name


class Sendmail(SystemTestCase):
    users = ["alice", "bob", "carol", "dave"]

    def send(self, *args, input, code=0):
        r = self.server.mgsendmail(*args, input=input)
        self.assertEqual(r.returncode, code, r.stderr.decode(errors="replace"))
        return r

    def only(self, user):
        self.assertEqual(self.server.wait_delivered(user, 1), 1, user)
        msgs = self.server.fetch_all(user)
        self.assertEqual(len(msgs), 1)
        return msgs[0]

    def test_recipients_as_arguments(self):
        self.send("-f", "alice@example.test", "bob@example.test", "carol@example.test",
                  input=b"From: alice@example.test\nSubject: args\n\nHello\n")
        for u in ("bob", "carol"):
            raw = self.only(u)
            self.assertTrue(raw.startswith(b"Return-Path: <alice@example.test>\r\n"), raw[:100])
            # LF line ends became CR LF; Received names the local user.
            self.assertRegex(raw, rb"Received: by " + re.escape(HOSTNAME.encode()) +
                                  rb" \(Mailgenic, from userid " + re.escape(ME.encode()) +
                                  rb"\)\r\n\tid [0-9A-Z]{16}(\r\n\tfor <[^>]+>)?; [^\r]+\r\n")
            self.assertTrue(raw.endswith(b"From: alice@example.test\r\nSubject: args\r\n\r\nHello\r\n"),
                            raw)
            # The local path adds Message-ID and Date like submission.
            self.assertRegex(raw, rb"\r\nMessage-ID: <[0-9A-Z]{16}@" + re.escape(HOSTNAME.encode()) + rb">\r\n")
            self.assertRegex(raw, rb"\r\nDate: [^\r]+\r\n")
        self.assertEqual(self.server.maildir_count("dave"), 0)
        self.assertRegex(self.server.smtpd_log(),
                         rf"local: [0-9A-Z]{{16}} accepted session=\S+ remote=local:{ME} "
                         rf"from=alice@example\.test rcpts=2")

    def test_t_takes_to_cc_bcc_and_removes_bcc(self):
        msg = (b"From: Alice <alice@example.test>\n"
               b"To: \"Bob, the builder\" <bob@example.test>\n"
               b"Cc: carol@example.test (Carol)\n"
               b"Bcc: dave@example.test\n"
               b"Subject: -t\n\nbody\n")
        self.send("-t", "-f", "alice@example.test", input=msg)
        for u in ("bob", "carol", "dave"):
            raw = self.only(u)
            self.assertNotIn(b"Bcc:", raw)
            self.assertNotIn(b"dave@", raw.split(b"Delivered-To:", 1)[1].split(b"\r\n", 1)[1]
                             if u == "dave" else raw)
            self.assertIn(b"Cc: carol@example.test (Carol)\r\n", raw)
        self.assertEqual(self.server.maildir_count("alice"), 0)

    def test_t_group_and_folded_fields(self):
        msg = (b"From: alice@example.test\n"
               b"To: team: bob@example.test,\n carol@example.test;\n"
               b"Subject: group\n\nx\n")
        self.send("-t", input=msg)
        self.only("bob")
        self.only("carol")

    def test_bcc_removed_without_t(self):
        self.send("bob@example.test",
                  input=b"From: a@example.test\nBcc: secret@example.test\nSubject: s\n\nx\n")
        raw = self.only("bob")
        self.assertNotIn(b"Bcc", raw)
        self.assertNotIn(b"secret", raw)

    def test_lone_dot_ends_input(self):
        self.send("bob@example.test",
                  input=b"Subject: dot\n\nbefore\n.\nafter the dot\n")
        raw = self.only("bob")
        self.assertTrue(raw.endswith(b"\r\nbefore\r\n"), raw)

    def test_i_keeps_lone_dot(self):
        for flag in ("-i", "-oi"):
            self.send(flag, "bob@example.test",
                      input=f"Subject: {flag}\n\nbefore\n.\n..two\nafter\n".encode())
        self.assertEqual(self.server.wait_delivered("bob", 2), 2)
        for raw in self.server.fetch_all("bob"):
            self.assertTrue(raw.endswith(b"\r\nbefore\r\n.\r\n..two\r\nafter\r\n"), raw)

    def test_f_and_F(self):
        self.send("-f", "carol@example.test", "-F", "Carol Q. Public", "bob@example.test",
                  input=b"Subject: no from\n\nx\n")
        raw = self.only("bob")
        self.assertTrue(raw.startswith(b"Return-Path: <carol@example.test>\r\n"))
        # The name has a dot: quoted.
        self.assertIn(b'\r\nFrom: "Carol Q. Public" <carol@example.test>\r\n', raw)

    def test_default_sender_and_from(self):
        self.send("-F", "Cron Daemon", "bob@example.test", input=b"Subject: cron\n\nx\n")
        raw = self.only("bob")
        self.assertTrue(raw.startswith(f"Return-Path: <{ME}@{HOSTNAME}>\r\n".encode()), raw[:100])
        self.assertIn(f"\r\nFrom: Cron Daemon <{ME}@{HOSTNAME}>\r\n".encode(), raw)

    def test_existing_from_kept(self):
        self.send("-F", "Ignored", "-f", "alice@example.test", "bob@example.test",
                  input=b"From: Alice <alice@example.test>\nSubject: s\n\nx\n")
        raw = self.only("bob")
        self.assertNotIn(b"Ignored", raw)
        self.assertEqual(raw.count(b"\r\nFrom: "), 1)

    def test_8bit_body(self):
        self.send("bob@example.test", input="Subject: \u00fc\n\nGr\u00fc\u00dfe\n".encode())
        raw = self.only("bob")
        self.assertTrue(raw.endswith("Gr\u00fc\u00dfe\r\n".encode()))

    def test_ignored_options_keep_their_values(self):
        # sendmail's -h takes a hop count and -X a file: their values are
        # not recipients (mutt and old scripts pass such options).
        self.send("-h", "17", "-X", "/dev/null", "-oem", "-m", "-v", "bob@example.test",
                  input=b"Subject: options\n\nx\n")
        self.assertIn(b"Subject: options", self.only("bob"))
        r = self.server.mgsendmail("--help", input=b"")
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"Usage: mgsendmail", r.stdout)

    def test_exit_codes(self):
        # 67: an unknown local recipient (nothing is queued).
        r = self.send("nobody@example.test", input=b"Subject: x\n\nx\n", code=67)
        self.assertIn(b"nobody@example.test", r.stderr)
        # 64: no recipients.
        self.send(input=b"Subject: x\n\nx\n", code=64)
        self.send("-t", input=b"Subject: nobody\n\nx\n", code=64)
        # 0 with a remote recipient (queued for the relay).
        self.send("someone@other.test", input=b"Subject: x\n\nx\n")
        self.assertIn("someone@other.test", self.server.mgqueue("list").stdout)
        # 75: mgsmtpd is not running.
        self.server.stop_smtpd()
        r = self.send("bob@example.test", input=b"Subject: x\n\nx\n", code=75)
        self.assertIn(b"mgsendmail:", r.stderr)
        self.server.start_smtpd()
        self.send("bob@example.test", input=b"Subject: back\n\nx\n")
        self.only("bob")

    def test_sendmail_sender_is_not_checked(self):
        # Like sendmail, a local user may set any envelope sender; the
        # Received field says who it really was.
        self.send("-f", "ceo@other.test", "bob@example.test", input=b"Subject: x\n\nx\n")
        raw = self.only("bob")
        self.assertTrue(raw.startswith(b"Return-Path: <ceo@other.test>"))
        self.assertIn(f"from userid {ME})".encode(), raw)

    def test_message_parses(self):
        self.send("-t", input=b"From: alice@example.test\nTo: bob@example.test\nSubject: p\n\nbody\n")
        raw = self.only("bob")
        m = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(m["Subject"], "p")
        self.assertEqual(m.get_content().strip(), "body")


if __name__ == "__main__":
    mgsystem.main()
