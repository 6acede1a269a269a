#!/usr/bin/python3
"""mutt sending in batch mode (`mutt -s subject -a file -- rcpt < body`)
through mgsmtpd's submission port (smtp_url smtps://, AUTH) with its copy
saved over IMAPS into Sent (record = imaps://.../Sent, an APPEND), both
trusting the test certificate (ssl_ca_certificates_file). The recipient
gets exactly what mutt wrote (after the trace fields), Bcc recipients get
a copy without a Bcc field, and the Sent copy is the same message. And
mutt reading over IMAPS on a terminal (a pty, keys typed as a user
would): tag by pattern, save to another folder, sync, flag."""
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import time
import unittest

from mgsystem import HOSTNAME, SystemTestCase, main
from mgtest import fetch_items, make_message

MUTT = shutil.which("mutt")

TRACE_RE = re.compile(
    rb"^Return-Path: <alice@example\.test>\r\nDelivered-To: (?P<rcpt>[^\r]+)\r\n"
    rb"Received: from mutt\.client\.test \(\[127\.0\.0\.1\]\)\r\n"
    rb"\tby " + re.escape(HOSTNAME.encode()) + rb" \(Mailgenic\) with ESMTPSA id [0-9A-Z]{16}\r\n"
    # One recipient: "for <rcpt>" on its own line; several: none (Bcc).
    rb"\t\(using TLSv1\.[23] with cipher [A-Za-z0-9_-]+\)(?:\r\n\tfor <[^>]+>)?; [^\r\n]+\r\n")


@unittest.skipIf(MUTT is None, "mutt is not installed")
class TestMutt(SystemTestCase):
    users = ["alice", "bob", "carol"]

    def write_rc(self, password=None):
        home = os.path.join(self.tmp, "home")
        os.makedirs(home, exist_ok=True)
        rc = os.path.join(home, "muttrc")
        with open(rc, "w") as f:
            f.write(f"""set smtp_url = "smtps://alice@example.test@localhost:{self.server.submission_port}/"
set smtp_pass = "{password or self.server.password('alice')}"
set imap_user = "alice@example.test"
set imap_pass = "{self.server.password('alice')}"
set ssl_ca_certificates_file = "{self.server.cert}"
set certificate_file = "{home}/certificates"
set ssl_verify_host = yes
set from = "Alice Example <alice@example.test>"
set use_from = yes
set hostname = mutt.client.test
set folder = "imaps://localhost:{self.server.port}/"
set record = "=Sent"
set copy = yes
set spoolfile = ""
set charset = "utf-8"
set send_charset = "us-ascii:utf-8"
set confirmappend = no
set delete = yes
set move = no
set mark_old = no
set sleep_time = 0
set wait_key = no
""")
        os.chmod(rc, 0o600)
        return home, rc

    def mutt(self, *args, body=b"", password=None, expect_ok=True):
        home, rc = self.write_rc(password)
        r = subprocess.run([MUTT, "-n", "-F", rc] + list(args), input=body, capture_output=True,
                           timeout=90, env=dict(os.environ, HOME=home, TERM="dumb"))
        if expect_ok:
            self.assertEqual(r.returncode, 0, f"{r.stdout!r}\n{r.stderr!r}\n"
                                              f"{self.server.smtpd_log()[-3000:]}")
        else:
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def messages(self, user, mailbox="INBOX"):
        c = self.raw(user)
        untagged, _ = c.ok(f"EXAMINE {mailbox}")
        out = []
        if not any(l == b"* 0 EXISTS" for l in untagged):
            untagged, _ = c.ok("FETCH 1:* (FLAGS BODYSTRUCTURE BODY.PEEK[] BODY.PEEK[1] "
                               "BODY.PEEK[2])")
            out = [fetch_items(l)[1] for l in untagged]
        c.close()
        return out

    def test_send_attachment_bcc_and_fcc(self):
        att = os.path.join(self.tmp, "notes.txt")
        with open(att, "wb") as f:
            f.write(b"attached data\n.line with a dot\n")
        body = "Hello Bob.\n.a dot line\n\nGr\u00fc\u00dfe\n".encode()
        self.mutt("-s", "from mutt", "-b", "carol@example.test", "-a", att, "--",
                  "bob@example.test", body=body)
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        self.assertEqual(self.server.wait_delivered("carol", 1), 1)
        (bob,) = self.messages("bob")
        (carol,) = self.messages("carol")
        sent = self.messages("alice", "Sent")
        self.assertEqual(len(sent), 1)
        sent = sent[0]

        m = TRACE_RE.match(bob[b"BODY[]"])
        self.assertIsNotNone(m, bob[b"BODY[]"][:600])
        self.assertEqual(m.group("rcpt"), b"bob@example.test")
        written = bob[b"BODY[]"][m.end():]
        head = written[:written.index(b"\r\n\r\n") + 2].decode()
        self.assertRegex(head, r"(?m)^From: Alice Example <alice@example\.test>\r$")
        self.assertRegex(head, r"(?m)^To: bob@example\.test\r$")
        self.assertRegex(head, r"(?m)^Subject: from mutt\r$")
        self.assertRegex(head, r"(?m)^Message-ID: <[^>]+@mutt\.client\.test>\r$")
        self.assertNotIn("Bcc:", head)
        # The parts, as mutt wrote them.
        bs = bob[b"BODYSTRUCTURE"]
        self.assertEqual([p[0].lower() for p in bs[:2]], [b"text", b"text"])
        self.assertEqual(bob[b"BODY[1]"], "Hello Bob.\r\n.a dot line\r\n\r\nGr\u00fc\u00dfe\r\n".encode())
        self.assertEqual(bob[b"BODY[2]"], b"attached data\r\n.line with a dot\r\n")
        self.assertIn(b'filename="notes.txt"', written)

        # Carol (Bcc) got the same message, without a Bcc field.
        mc = TRACE_RE.match(carol[b"BODY[]"])
        self.assertIsNotNone(mc, carol[b"BODY[]"][:600])
        self.assertEqual(carol[b"BODY[]"][mc.end():], written)

        # The Sent copy (mutt's APPEND) is the message as sent, \Seen, with
        # the Bcc field mutt keeps for its own copy.
        bcc = b"Bcc: carol@example.test\r\n"
        self.assertIn(bcc, sent[b"BODY[]"])
        # (mutt writes the copy's Date anew: it may be a second later.)
        no_date = re.compile(rb"^Date: [^\r]*\r\n")
        self.assertEqual(no_date.sub(b"", sent[b"BODY[]"].replace(bcc, b"", 1)),
                         no_date.sub(b"", written))
        self.assertIn(b"\\Seen", sent[b"FLAGS"])

    def mutt_keys(self, ready, steps):
        """mutt on a terminal (a pty), reading INBOX over IMAPS: waits for
        `ready` on the screen, then types each step. Returns the screen
        output."""
        home, rc = self.write_rc()
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.environ.update(HOME=home, TERM="vt100")
                os.execv(MUTT, [MUTT, "-n", "-F", rc, "-f",
                                f"imaps://localhost:{self.server.port}/INBOX"])
            finally:
                os._exit(127)
        screen = bytearray()

        def pump(seconds, until=None):
            end = time.time() + seconds
            while time.time() < end:
                if until is not None and until in screen:
                    return True
                r, _, _ = select.select([fd], [], [], 0.1)
                if r:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        return False
                    if not data:
                        return False
                    screen.extend(data)
            return until is None
        try:
            self.assertTrue(pump(30, ready), f"mutt did not show {ready!r}: {bytes(screen)[-2000:]!r}")
            for keys in steps:
                os.write(fd, keys)
                pump(1.0)
            os.write(fd, b"q")
            end = time.time() + 20
            while time.time() < end:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                pump(0.2)
            else:
                self.fail(f"mutt did not quit: {bytes(screen)[-2000:]!r}")
            pid = 0
            self.assertEqual(os.waitstatus_to_exitcode(status), 0, bytes(screen)[-2000:])
        finally:
            if pid:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            os.close(fd)
        return bytes(screen)

    def test_read_tag_save_flag_over_imap(self):
        """Interactive mutt (on a pty) over IMAPS: tags by subject, saves the
        tagged messages to Archive, syncs (expunge), flags the remaining one."""
        msgs = [make_message(subject=s) for s in ("keep this", "move one", "move two")]
        for msg in msgs:
            self.deliver(["alice"], msg)
        inbox_before = self.messages("alice")
        screen = self.mutt_keys(b"keep this", [b"T~s move\r", b";s=Archive\r", b"$", b"F", b"$"])
        self.assertNotIn(b"rror", screen[-3000:])
        archive = self.messages("alice", "Archive")
        inbox = self.messages("alice")
        self.assertEqual(sorted(m[b"BODY[]"] for m in archive),
                         sorted(m[b"BODY[]"] for m in inbox_before[1:]))
        self.assertEqual(len(inbox), 1)
        self.assertEqual(inbox[0][b"BODY[]"], inbox_before[0][b"BODY[]"])
        self.assertIn(b"\\Flagged", inbox[0][b"FLAGS"])

    def test_wrong_password(self):
        self.mutt("-s", "refused", "--", "bob@example.test", body=b"x\n", password="wrong",
                  expect_ok=False)
        self.assertRegex(self.server.smtpd_log(),
                         r"login failed session=\S+ user=alice@example\.test .*reason=password")
        self.assertEqual(self.server.maildir_count("bob"), 0)
        self.assertEqual(self.messages("alice", "Sent"), [])


if __name__ == "__main__":
    main()
