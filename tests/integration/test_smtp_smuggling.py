#!/usr/bin/env python3
"""SMTP smuggling: a message with a non-standard end-of-data look-alike
("\\n.\\n", "\\r\\n.\\n", ...) followed by a second MAIL/RCPT/DATA must
be one message (or be refused for its bare line ends on port 25 with
bare_newline=reject), never two. The smuggled second message would go to
carol: her mailbox must stay empty."""
import re

import mgsystem
from mgsystem import SystemTestCase

FAKE_ENDS = [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\n.\r"]


def payload(fake_end):
    first = (b"From: attacker@remote.test\r\nTo: bob@example.test\r\nSubject: first\r\n\r\n"
             b"the real message" + fake_end)
    smuggled = (b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n"
                b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\npay the invoice\r\n")
    return first + smuggled + b".\r\n"


class SmugglingReject(SystemTestCase):
    """Port 25 with the default bare_newline = reject."""

    def send_all(self, kind, expect_code):
        with self.raw_smtp(kind) as r:
            r.ehlo()
            if kind == "submission":
                r.login("alice")
            sender = "alice@example.test" if kind == "submission" else "attacker@remote.test"
            for fake in FAKE_ENDS:
                r.expect(f"MAIL FROM:<{sender}>", 250)
                r.expect("RCPT TO:<bob@example.test>", 250)
                r.expect("DATA", 354)
                r.send(payload(fake))
                code, lines = r.reply()
                self.assertEqual(code, expect_code, f"{fake!r}: {lines}")
                # In step: the next answer is to our NOOP, not to a
                # smuggled command.
                code, lines = r.cmd("NOOP")
                self.assertEqual((code, lines), (250, ["2.0.0 Ok"]), f"after {fake!r}")

    def test_port25_smuggling(self):
        self.send_all("smtp", 554)
        log = self.server.smtpd_log()
        self.assertEqual(self.server.maildir_count("bob"), 0)
        self.assertEqual(self.server.maildir_count("carol"), 0)
        self.assertEqual(self.server.queue_files(), [])
        self.assertNotIn("accepted", log)

    def test_refusal_text(self):
        with self.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<a@remote.test>", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            r.expect("DATA", 354)
            r.send(payload(b"\n.\n"))
            code, lines = r.reply()
            self.assertEqual(code, 554)
            self.assertTrue(lines[0].startswith("5.6.0"), lines)

    def test_bare_lf_in_a_command(self):
        with self.raw_smtp() as r:
            r.ehlo()
            code, lines = r.cmd(b"MAIL FROM:<a@remote.test>\n" + b"RSET")
            self.assertEqual(code, 500, lines)
            self.assertEqual(r.reply()[0], 250)   # the RSET, CR LF ended

    def test_submission_takes_one_message(self):
        # Submission always normalises: each payload is one message.
        self.send_all("submission", 250)
        self.check_one_message_each()

    def check_one_message_each(self):
        n = len(FAKE_ENDS)
        self.assertEqual(self.server.wait_delivered("bob", n), n)
        self.assertTrue(self.server.wait_queue_empty())
        self.assertEqual(self.server.maildir_count("bob"), n)
        self.assertEqual(self.server.maildir_count("carol"), 0)
        for raw in self.server.fetch_all("bob"):
            # The smuggled commands are content of the one message...
            self.assertIn(b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<carol@example.test>\r\n"
                          b"DATA\r\n", raw)
            # ...and the bare line ends were stored as CR LF.
            self.assertIsNone(re.search(rb"[^\r]\n|\r[^\n]", raw), raw)


class SmugglingNormalize(SmugglingReject):
    """Port 25 with bare_newline = normalize."""
    conf = {"smtp.bare_newline": "normalize"}

    def test_port25_smuggling(self):
        self.send_all("smtp", 250)
        self.check_one_message_each()

    test_refusal_text = None               # nothing is refused with normalize
    test_submission_takes_one_message = None   # port 465 does not depend on it

    def test_bare_lf_in_a_command(self):
        with self.raw_smtp() as r:
            r.ehlo()
            r.expect(b"MAIL FROM:<a@remote.test>\n" + b"RSET", 250)
            self.assertEqual(r.reply()[0], 250)

    def test_normalized_bytes(self):
        with self.raw_smtp() as r:
            r.ehlo()
            r.expect("MAIL FROM:<a@remote.test>", 250)
            r.expect("RCPT TO:<bob@example.test>", 250)
            r.expect("DATA", 354)
            r.send(b"Subject: lf\n\nline one\nline two\r\nline three\rend\r\n.\r\n")
            self.assertEqual(r.reply()[0], 250)
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        raw = self.server.fetch_all("bob")[0]
        self.assertTrue(raw.endswith(b"Subject: lf\r\n\r\nline one\r\nline two\r\nline three\r\nend\r\n"),
                        raw)


if __name__ == "__main__":
    mgsystem.main()
