#!/usr/bin/env python3
"""curl as an IMAPS and SMTPS client, trusting the test certificate (no
--insecure): LIST, EXAMINE, FETCH by UID and by index with sections,
SEARCH in the URL and as a custom request, APPEND with --upload-file;
submission on 465 with AUTH PLAIN and LOGIN. Everything curl reads or
writes is compared with what the server holds, byte for byte."""
import os
import re
import shutil
import subprocess
import time
import unittest

import mgtest
from mgtest import fetch_items
from mgsystem import SystemTestCase, main

CURL = shutil.which("curl")

# curl's exit codes (curl(1), EXIT CODES).
CURLE_LOGIN_DENIED = 67
CURLE_REMOTE_FILE_NOT_FOUND = 78
CURLE_QUOTE_ERROR = 21
CURLE_SEND_ERROR = 55


@unittest.skipIf(CURL is None, "curl is not installed")
class CurlClient(SystemTestCase):

    def curl(self, url, *args, user="alice", password=None, input=None, expect_rc=0):
        if password is None:
            password = self.server.password(user)
        argv = [CURL, "-sS", "--cacert", self.server.cert, "--max-time", "60",
                "-u", f"{self.server.address(user)}:{password}"] + list(args) + [url]
        r = subprocess.run(argv, capture_output=True, input=input, timeout=90)
        self.assertEqual(r.returncode, expect_rc,
                         f"{argv[6:]}: {r.stderr.decode(errors='replace')}\n"
                         f"{r.stdout[:2000]!r}\n{self.server.log_tail()}")
        return r.stdout

    def imaps(self, path=""):
        return f"imaps://localhost:{self.server.port}/{path}"

    def smtps(self):
        return f"smtps://localhost:{self.server.submission_port}"

    def server_messages(self, mailbox="INBOX", user="alice"):
        """[(uid, flags, bytes)] read with BODY.PEEK[] (changes nothing)."""
        c = self.raw(user)
        untagged, _ = c.ok(f"EXAMINE {mgtest.quote(mailbox)}")
        out = []
        if any(re.match(rb"\* [1-9]\d* EXISTS", l) for l in untagged):
            untagged, _ = c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[])")
            for line in untagged:
                items = fetch_items(line)[1]
                flags = sorted(f for f in items[b"FLAGS"] if f != b"\\Recent")
                out.append((int(items[b"UID"]), flags, items[b"BODY[]"]))
        c.close()
        return out

    def deliver_three(self):
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"inbox {i}",
                                                        body=f"body {i}\r\nline two\r\n"))

    def test_list(self):
        c = self.raw()
        c.ok("CREATE Projects/2026")
        c.close()
        out = self.curl(self.imaps())
        lines = out.decode().splitlines()
        names = {}
        for line in lines:
            m = re.fullmatch(r'\* LIST \(([^)]*)\) "/" (.+)', line)
            self.assertIsNotNone(m, line)
            names[m.group(2).strip('"')] = m.group(1).split()
        self.assertEqual(set(names), {"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash",
                                      "Projects", "Projects/2026"})
        self.assertIn("\\Sent", names["Sent"])
        self.assertIn("\\HasChildren", names["Projects"])
        # A mailbox path lists that mailbox.
        out = self.curl(self.imaps("Projects/2026"))
        self.assertRegex(out, rb'^\* LIST \(\\HasNoChildren\) "/" "?Projects/2026"?\r\n$')

    def test_examine_and_fetch_by_uid(self):
        self.deliver_three()
        before = self.server_messages()
        out = self.curl(self.imaps(), "-X", "EXAMINE INBOX").decode()
        self.assertIn("* 3 EXISTS\r\n", out)
        self.assertIn("* OK [PERMANENTFLAGS ()]", out)
        self.assertIn("* OK [UIDNEXT 4]", out)
        # The whole message by UID: exactly the stored bytes.
        for uid, _, raw in before:
            self.assertEqual(self.curl(self.imaps(f"INBOX;UID={uid}")), raw)
        # curl fetches with BODY[] (not PEEK): now \Seen.
        after = self.server_messages()
        self.assertTrue(all("\\Seen" in [f.decode() for f in m[1]] for m in after), after)
        # Sections, by UID and by message sequence number.
        self.assertEqual(self.curl(self.imaps("INBOX;UID=2;SECTION=TEXT")),
                         b"body 1\r\nline two\r\n")
        self.assertEqual(self.curl(self.imaps("INBOX;MAILINDEX=3;SECTION=HEADER.FIELDS%20(SUBJECT)")),
                         b"Subject: inbox 2\r\n\r\n")
        header = self.curl(self.imaps("INBOX;UID=1;SECTION=HEADER"))
        self.assertEqual(header, before[0][2][:before[0][2].index(b"\r\n\r\n") + 4])
        # A UID that does not exist, a mailbox that does not exist.
        self.curl(self.imaps("INBOX;UID=99"), expect_rc=CURLE_REMOTE_FILE_NOT_FOUND)
        r = subprocess.run([CURL, "-sS", "--cacert", self.server.cert, "-u",
                            f"{self.server.address('alice')}:{self.server.password('alice')}",
                            self.imaps("Nope;UID=1")], capture_output=True, timeout=90)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")

    def test_search(self):
        self.deliver_three()
        # In the URL: curl sends SEARCH (sequence numbers).
        out = self.curl(self.imaps("INBOX?SUBJECT%20%22inbox%202%22"))
        self.assertEqual(out, b"* SEARCH 3\r\n")
        out = self.curl(self.imaps("INBOX"), "-X", 'UID SEARCH BODY "line two" NOT SUBJECT "inbox 0"')
        self.assertEqual(out, b"* SEARCH 2 3\r\n")
        out = self.curl(self.imaps("INBOX"), "-X", "SEARCH UNSEEN")
        self.assertEqual(out, b"* SEARCH 1 2 3\r\n")
        out = self.curl(self.imaps("INBOX"), "-X", "SEARCH DELETED")
        self.assertEqual(out, b"* SEARCH\r\n")
        out = self.curl(self.imaps(), "-X", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")
        self.assertEqual(out, b"* STATUS INBOX (MESSAGES 3 UNSEEN 3 UIDNEXT 4)\r\n")
        # A custom STORE through curl, seen by the next session.
        out = self.curl(self.imaps("INBOX"), "-X", "UID STORE 2 +FLAGS (\\Flagged)")
        self.assertEqual(out, b"* 2 FETCH (FLAGS (\\Flagged) UID 2)\r\n")
        self.assertEqual(self.curl(self.imaps("INBOX"), "-X", "SEARCH FLAGGED"),
                         b"* SEARCH 2\r\n")
        # A malformed custom request fails the transfer (BAD).
        self.curl(self.imaps("INBOX"), "-X", "SEARCH (", expect_rc=CURLE_QUOTE_ERROR)

    def test_append_upload(self):
        msg = mgtest.make_message(subject="uploaded by curl",
                                  body=".leading dot\r\n\r\n\xe4\xf6 8-bit\r\nlast\r\n")
        path = os.path.join(self.tmp, "up.eml")
        with open(path, "wb") as f:
            f.write(msg)
        self.curl(self.imaps("Drafts"), "--upload-file", path)
        msgs = self.server_messages("Drafts")
        self.assertEqual(len(msgs), 1)
        uid, flags, raw = msgs[0]
        self.assertEqual(raw, msg)
        # curl appends with \Seen.
        self.assertEqual(flags, [b"\\Seen"])
        # Into a mailbox that does not exist: refused ([TRYCREATE]), nothing stored.
        r = subprocess.run([CURL, "-sS", "--cacert", self.server.cert, "-u",
                            f"{self.server.address('alice')}:{self.server.password('alice')}",
                            "--upload-file", path, self.imaps("Missing")],
                           capture_output=True, timeout=90)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.server_messages("Drafts"), msgs)
        # And read back through curl.
        self.assertEqual(self.curl(self.imaps(f"Drafts;UID={uid}")), msg)

    def test_big_upload_and_download(self):
        """8 MB up (APPEND streamed to disk) and down, byte for byte."""
        line = b"".join(b"%07d " % i + b"q" * 68 + b"\r\n" for i in range(100000))
        msg = b"Subject: big\r\n\r\n" + line
        path = os.path.join(self.tmp, "big.eml")
        with open(path, "wb") as f:
            f.write(msg)
        self.curl(self.imaps("Archive"), "--upload-file", path)
        self.assertEqual(self.curl(self.imaps("Archive;UID=1")), msg)
        self.assertEqual(self.curl(self.imaps("Archive;UID=1;SECTION=TEXT;PARTIAL=7000000.77")),
                         msg[len(b"Subject: big\r\n\r\n") + 7000000:][:77])

    def test_imaps_wrong_password(self):
        self.curl(self.imaps(), password="not-the-password", expect_rc=CURLE_LOGIN_DENIED)
        self.assertRegex(self.server.log(), r"login failed .*user=alice@example\.test .*reason=password")

    def test_login_after_a_quiet_spell(self):
        """The link to the auth service outlives 5 s without traffic: it was
        cut by the connect timeout kept as an idle timeout, and a login
        arriving as it was cut failed (curl: "Login denied")."""
        self.curl(self.imaps())
        time.sleep(5.5)
        for _ in range(3):
            self.curl(self.imaps())
        self.server.check_log()
        self.assertNotIn("idle timeout", self.server.log())
        self.assertNotIn("login failed", self.server.log())

    def submit(self, msg, *args, expect_rc=0, password=None):
        path = os.path.join(self.tmp, "sub.eml")
        with open(path, "wb") as f:
            f.write(msg)
        return self.curl(self.smtps(), "--mail-from", "alice@example.test",
                         "--mail-rcpt", "bob@example.test", "--mail-rcpt", "carol@example.test",
                         "--upload-file", path, *args, expect_rc=expect_rc, password=password)

    users = ["alice", "bob", "carol"]

    def check_delivered(self, msg, count=1):
        for user in ("bob", "carol"):
            self.assertEqual(self.server.wait_delivered(user, count), count)
            raw = self.server.fetch_all(user)[-1]
            prefix = f"Return-Path: <alice@example.test>\r\nDelivered-To: {user}@example.test\r\n"
            self.assertTrue(raw.startswith(prefix.encode()), raw[:300])
            m = re.search(rb"\r\n\twith ESMTPSA id [0-9A-Z]{16}\r\n|"
                          rb" with ESMTPSA id [0-9A-Z]{16}\r\n", raw)
            self.assertIsNotNone(m, raw[:500])
            self.assertTrue(raw.endswith(msg), raw)
            # Trace fields, then exactly what curl sent.
            self.assertRegex(raw[:len(raw) - len(msg)].decode(),
                             r"^Return-Path: [^\r]*\r\nDelivered-To: [^\r]*\r\nReceived: "
                             r"(?:[^\r]*\r\n\t)*[^\r]*\r\n$")

    def test_smtps_auth_plain_and_login(self):
        msg = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
               b"Subject: via curl\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
               b"Message-ID: <curl-1@client.test>\r\n\r\n"
               b".a dot-stuffed line\r\n..two\r\n\r\nend\r\n")
        self.submit(msg)
        self.check_delivered(msg, 1)
        log = self.server.smtpd_log()
        msg2 = msg.replace(b"curl-1", b"curl-2")
        self.submit(msg2, "--login-options", "AUTH=LOGIN")
        self.check_delivered(msg2, 2)
        self.assertIn("login session=", self.server.smtpd_log()[len(log):] or log)

    def test_port_25_starttls(self):
        """Mail from another server: port 25, STARTTLS required by curl
        (--ssl-reqd), no AUTH; local recipients only."""
        msg = (b"From: someone@remote.test\r\nTo: bob@example.test\r\nSubject: mx\r\n"
               b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <mx@remote.test>\r\n\r\n"
               b".dot\r\nbody\r\n")
        path = os.path.join(self.tmp, "mx.eml")
        with open(path, "wb") as f:
            f.write(msg)
        argv = [CURL, "-sS", "--cacert", self.server.cert, "--ssl-reqd",
                f"smtp://localhost:{self.server.smtp_port}", "--mail-from", "someone@remote.test",
                "--upload-file", path]
        r = subprocess.run(argv + ["--mail-rcpt", "bob@example.test"], capture_output=True,
                           text=True, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.server.wait_delivered("bob", 1), 1)
        raw = self.server.fetch_all("bob")[0]
        self.assertTrue(raw.endswith(msg), raw)
        self.assertRegex(raw, rb"\r\n\tby [^\r]+ \(Mailgenic\) with ESMTPS id [0-9A-Z]{16}\r\n")
        # Not a relay.
        r = subprocess.run(argv + ["--mail-rcpt", "someone@elsewhere.test"], capture_output=True,
                           text=True, timeout=90)
        self.assertEqual(r.returncode, CURLE_SEND_ERROR, r.stderr)
        self.assertRegex(r.stderr, r"RCPT failed: 55\d")

    def test_smtps_refusals(self):
        msg = b"From: alice@example.test\r\nSubject: x\r\n\r\nx\r\n"
        self.submit(msg, password="wrong", expect_rc=CURLE_LOGIN_DENIED)
        # Without credentials: MAIL is refused with 530.
        path = os.path.join(self.tmp, "anon.eml")
        with open(path, "wb") as f:
            f.write(msg)
        r = subprocess.run([CURL, "-sS", "--cacert", self.server.cert, self.smtps(),
                            "--mail-from", "alice@example.test", "--mail-rcpt",
                            "bob@example.test", "--upload-file", path],
                           capture_output=True, text=True, timeout=90)
        self.assertEqual(r.returncode, CURLE_SEND_ERROR, r.stderr)
        self.assertIn("530", r.stderr)
        self.assertEqual(self.server.maildir_count("bob"), 0)


if __name__ == "__main__":
    main()
