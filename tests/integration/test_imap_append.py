#!/usr/bin/python3
"""APPEND (synchronising and LITERAL+ literals, flags, INTERNALDATE,
APPENDUID, TRYCREATE, APPENDLIMIT with TOOBIG), COPY (COPYUID), MOVE
(COPYUID before the EXPUNGEs), UID EXPUNGE, quota, and large messages
(streamed in and out)."""
import calendar
import imaplib
import os
import re
import time

import mgtest
from mgtest import crlf, fetch_items

APPEND_LIMIT = 256 * 1024


def uid_set(text):
    """'1:3,7' -> [1, 2, 3, 7]"""
    out = []
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out += list(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return out


class TestAppend(mgtest.MgTestCase):
    conf = {"imap.append_limit": str(APPEND_LIMIT)}
    users = ["alice", ("tiny", ("--quota", "4K"))]

    def status(self, c, box, items="MESSAGES UIDNEXT UIDVALIDITY"):
        untagged, _ = c.ok(f"STATUS {mgtest.quote(box)} ({items})")
        m = re.search(rb"\((.*)\)", untagged[-1])
        vals = m.group(1).split()
        return {vals[i].decode(): int(vals[i + 1]) for i in range(0, len(vals), 2)}

    def test_append_sync_and_nonsync(self):
        c = self.raw()
        self.assertIn(f"APPENDLIMIT={APPEND_LIMIT}".encode(), c.ok("CAPABILITY")[0][0])
        self.assertIn(b"LITERAL+", c.greeting)
        uidvalidity = self.status(c, "INBOX")["UIDVALIDITY"]
        msg1 = crlf("Subject: one\n\nfirst\n")
        untagged, tagged = c.append("INBOX", msg1, flags="\\Seen \\Flagged $Label",
                                    date="14-Jul-2021 08:09:10 +0200")
        self.assertEqual(tagged.split(b" ", 2)[1], b"OK")
        self.assertRegex(tagged, rb"\[APPENDUID %d 1\]" % uidvalidity)
        msg2 = crlf("Subject: two\n\nsecond\n")
        untagged, tagged = c.append("INBOX", msg2, nonsync=True)
        self.assertRegex(tagged, rb"OK \[APPENDUID %d 2\]" % uidvalidity)
        # Non-synchronising: no continuation request was sent.
        self.assertFalse(any(u.startswith(b"+") for u in untagged), untagged)
        # Several LITERAL+ APPENDs sent at once: answered in order.
        data = b""
        msgs = [crlf(f"Subject: batch {i}\n\nbatch body {i}\n") for i in range(5)]
        for i, m in enumerate(msgs):
            data += f"B{i} APPEND INBOX {{{len(m)}+}}\r\n".encode() + m + b"\r\n"
        c.send(data)
        for i in range(5):
            _, tagged = c.read_until_tagged(f"B{i}")
            self.assertRegex(tagged, rb"^B%d OK \[APPENDUID %d %d\]" % (i, uidvalidity, 3 + i))
        # An APPEND whose message is a quoted string is legal too.
        _, tagged = c.command('APPEND INBOX "Subject: quoted\r\n\r\nq"'.replace("\r\n", " "))
        self.assertRegex(tagged, rb"^T\d+ OK \[APPENDUID")
        c.ok("SELECT INBOX")
        untagged, _ = c.ok("FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[] UID)")
        one = fetch_items(untagged[0])[1]
        self.assertEqual(one[b"BODY[]"], msg1)
        self.assertEqual(set(one[b"FLAGS"]), {b"\\Seen", b"\\Flagged", b"$Label", b"\\Recent"})
        stamp = time.mktime(imaplib.Internaldate2tuple(
            b'INTERNALDATE "' + one[b"INTERNALDATE"] + b'"'))
        self.assertEqual(stamp, calendar.timegm((2021, 7, 14, 6, 9, 10, 0, 0, 0)))
        two = fetch_items(untagged[1])[1]
        self.assertEqual(two[b"BODY[]"], msg2)
        # Without a date, INTERNALDATE is now.
        stamp = time.mktime(imaplib.Internaldate2tuple(
            b'INTERNALDATE "' + two[b"INTERNALDATE"] + b'"'))
        self.assertLess(abs(stamp - time.time()), 120)

    def test_append_to_selected_mailbox_reports_exists(self):
        c = self.raw()
        c.ok("SELECT INBOX")
        untagged, tagged = c.append("INBOX", crlf("Subject: x\n\nx\n"))
        self.assertIn(b"* 1 EXISTS", untagged)
        self.assertRegex(tagged, rb"OK \[APPENDUID")

    def test_append_stores_crlf_line_ends(self):
        """Bare LF and bare CR are stored as CR LF (as LMTP stores mail), so
        BODY[], RFC822.SIZE and BODYSTRUCTURE's sizes agree; a CR at the
        end of the literal and a literal split across reads too."""
        c = self.raw()
        body = b"unix\nline\r\nmac\rline\r\n" + b"x" * 70000 + b"\n\r\n\r"
        for nonsync in (False, True):
            _, tagged = c.append("INBOX", b"Subject: lf\n\n" + body, nonsync=nonsync)
            self.assertRegex(tagged, rb"OK \[APPENDUID")
        # A message sent as a quoted string cannot hold CR or LF; one in a
        # literal kept in memory (not APPEND's message) is not possible
        # either, so these two cover every path.
        c.ok("EXAMINE INBOX")
        want_body = b"unix\r\nline\r\nmac\r\nline\r\n" + b"x" * 70000 + b"\r\n\r\n\r\n"
        untagged, _ = c.ok("FETCH 1:2 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT] BODYSTRUCTURE)")
        for line in untagged:
            items = fetch_items(line)[1]
            self.assertEqual(items[b"BODY[]"], b"Subject: lf\r\n\r\n" + want_body)
            self.assertEqual(int(items[b"RFC822.SIZE"]), len(items[b"BODY[]"]))
            self.assertEqual(items[b"BODY[TEXT]"], want_body)
            self.assertEqual(int(items[b"BODYSTRUCTURE"][6]), len(want_body))
            self.assertEqual(int(items[b"BODYSTRUCTURE"][7]), want_body.count(b"\n"))

    def test_append_crlf_across_reads(self):
        """A CR at the end of one read and its LF (or not) at the start of
        the next: the pieces are sent apart so the server reads them apart."""
        c = self.raw()
        pieces = [b"Subject: split\r", b"\n\r", b"\nline\r", b"bare cr\r", b"\r\n", b"end\r"]
        msg = b"".join(pieces)
        tag = c.next_tag()
        c.send(f"{tag} APPEND INBOX {{{len(msg)}+}}\r\n")
        for piece in pieces:
            c.send(piece)
            time.sleep(0.05)
        c.send(b"\r\n")
        _, tagged = c.read_until_tagged(tag)
        self.assertRegex(tagged, rb"OK \[APPENDUID")
        c.ok("EXAMINE INBOX")
        untagged, _ = c.ok("FETCH 1 BODY.PEEK[]")
        self.assertEqual(fetch_items(untagged[0])[1][b"BODY[]"],
                         b"Subject: split\r\n\r\nline\r\nbare cr\r\n\r\nend\r\n")

    def test_append_errors(self):
        c = self.raw()
        msg = crlf("Subject: e\n\ne\n")
        # Missing mailbox: TRYCREATE.
        _, tagged = c.append("Nowhere", msg)
        self.assertRegex(tagged, rb"^T\d+ NO \[TRYCREATE\]")
        _, tagged = c.append("Nowhere/deeper", msg, nonsync=True)
        self.assertRegex(tagged, rb"^T\d+ NO \[TRYCREATE\]")
        # Bad flags and dates are BAD; \Recent cannot be set.
        for flags in ("\\Recent", "\\Bogus", "(nested)"):
            _, tagged = c.append("INBOX", msg, flags=flags)
            self.assertRegex(tagged, rb"^T\d+ BAD", flags)
        for date in ("31-Feb-2021 00:00:00 +0000", "not a date", "1-Jan-2021 25:00:00 +0000"):
            _, tagged = c.append("INBOX", msg, date=date)
            self.assertRegex(tagged, rb"^T\d+ BAD", date)
        # An empty message is refused (as Dovecot does).
        _, tagged = c.append("INBOX", b"")
        self.assertRegex(tagged, rb"^T\d+ NO")
        # None of that stored anything.
        self.assertEqual(self.status(c, "INBOX")["MESSAGES"], 0)
        # And no file was left in tmp/.
        self.assertEqual(os.listdir(os.path.join(self.server.maildir("alice"), "tmp")), [])

    def test_append_limit(self):
        c = self.raw()
        # Synchronising literal over the limit: NO [TOOBIG], nothing read.
        tag = c.next_tag()
        c.send(f"{tag} APPEND INBOX {{{APPEND_LIMIT + 1}}}\r\n")
        _, tagged = c.read_until_tagged(tag)
        self.assertRegex(tagged, rb"^T\d+ NO \[TOOBIG\]")
        c.ok("NOOP")
        # Exactly at the limit: fine.
        big = crlf("Subject: limit\n\n") + b"x" * (APPEND_LIMIT - 18 - 2) + b"\r\n"
        self.assertEqual(len(big), APPEND_LIMIT)
        _, tagged = c.append("INBOX", big)
        self.assertRegex(tagged, rb"^T\d+ OK \[APPENDUID")
        # The huge announcement of RFC 7888 4: NO for sync...
        tag = c.next_tag()
        c.send(f"{tag} APPEND INBOX {{4294967295}}\r\n")
        _, tagged = c.read_until_tagged(tag)
        self.assertRegex(tagged, rb"^T\d+ NO \[TOOBIG\]")
        c.ok("NOOP")
        # ...BYE and close for non-sync (the client sends the data anyway).
        c.send(f"X APPEND INBOX {{{APPEND_LIMIT + 1}+}}\r\n")
        line = c.read_response()
        self.assertRegex(line, rb"^\* BYE \[TOOBIG\]|^X NO \[TOOBIG\]")
        self.assertTrue(c.is_closed())
        # The server goes on for others.
        d = self.raw()
        d.ok("NOOP")
        self.assertEqual(self.status(d, "INBOX")["MESSAGES"], 1)

    def test_quota(self):
        c = self.raw("tiny")
        small = crlf("Subject: s\n\n" + "y" * 1500 + "\n")
        _, tagged = c.append("INBOX", small)
        self.assertRegex(tagged, rb"^T\d+ OK")
        big = crlf("Subject: b\n\n" + "z" * 5000 + "\n")
        _, tagged = c.append("INBOX", big)
        self.assertRegex(tagged, rb"^T\d+ NO \[OVERQUOTA\]")
        c.ok("SELECT INBOX")
        untagged, _ = c.ok("COPY 1 INBOX")       # 2 x 1516 bytes of 4096
        self.assertIn(b"* 2 EXISTS", untagged)
        _, tagged = c.command("COPY 1 INBOX")
        self.assertRegex(tagged, rb"^T\d+ NO \[OVERQUOTA\]")
        untagged, _ = c.ok("NOOP")
        self.assertEqual(untagged, [])
        # MOVE does not add bytes: allowed at the limit.
        c.ok("MOVE 1 Trash")

    def test_large_message_streams(self):
        """A message well above the 128 KiB direct-read size: APPEND streams
        it to disk, FETCH reads it through the thread pool."""
        parts = []
        for i in range(3):
            parts.append(crlf(f"--b\nContent-Type: text/plain\n\npart {i} ") +
                         (b"0123456789abcdef" * 8 + b"\r\n") * 2000)
        msg = (crlf("Subject: large\nMIME-Version: 1.0\n"
                    "Content-Type: multipart/mixed; boundary=b\n\n") +
               b"\r\n".join(parts) + b"\r\n--b--\r\n")
        self.assertGreater(len(msg), 700000)
        self.server.stop()
        self.server.conf_extra["imap.append_limit"] = "10M"
        self.server.write_conf()
        self.server.start()
        c = self.raw()
        _, tagged = c.append("INBOX", msg, nonsync=True)
        self.assertRegex(tagged, rb"^T\d+ OK")
        c.ok("EXAMINE INBOX")
        untagged, _ = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[2] BODY.PEEK[]<700000.100>)")
        items = fetch_items(untagged[0])[1]
        self.assertEqual(int(items[b"RFC822.SIZE"]), len(msg))
        self.assertEqual(items[b"BODY[]"], msg)
        self.assertEqual(items[b"BODY[]<700000>"], msg[700000:700100])
        body2 = items[b"BODY[2]"]
        self.assertTrue(body2.startswith(b"part 1 0123"), body2[:40])
        self.assertEqual(len(body2), len(parts[1]) - len(crlf("--b\nContent-Type: text/plain\n\n")))
        # imaplib agrees (a second, independent client).
        m = self.imap()
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        self.assertEqual(data[0][1], msg)


class TestCopyMove(mgtest.MgTestCase):
    def setUp(self):
        super().setUp()
        for i in range(5):
            self.deliver(["alice"], mgtest.make_message(subject=f"m{i + 1}"))
        self.c = self.raw()
        self.c.ok("SELECT INBOX")
        self.c.ok("STORE 2 +FLAGS (\\Answered $Work)")

    def dst_validity(self, box):
        untagged, _ = self.c.ok(f"STATUS {box} (UIDVALIDITY)")
        return int(re.search(rb"UIDVALIDITY (\d+)", untagged[0]).group(1))

    def test_copy(self):
        c = self.c
        _, tagged = c.command("COPY 2:3 Archive")
        m = re.search(rb"^T\d+ OK \[COPYUID (\d+) (\S+) (\S+)\]", tagged)
        self.assertIsNotNone(m, tagged)
        self.assertEqual(int(m.group(1)), self.dst_validity("Archive"))
        self.assertEqual(uid_set(m.group(2).decode()), [2, 3])
        self.assertEqual(uid_set(m.group(3).decode()), [1, 2])
        _, tagged = c.command("UID COPY 5,1 Archive")
        m = re.search(rb"COPYUID \d+ (\S+) (\S+)\]", tagged)
        src, dst = uid_set(m.group(1).decode()), uid_set(m.group(2).decode())
        self.assertEqual(dict(zip(src, dst)), {1: 3, 5: 4})
        # Flags, keywords, INTERNALDATE and bytes came along.
        src, _ = c.ok("FETCH 2 (FLAGS INTERNALDATE BODY.PEEK[])")
        c.ok("EXAMINE Archive")
        dst, _ = c.ok("UID FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])")
        s_items, d_items = fetch_items(src[0])[1], fetch_items(dst[0])[1]
        self.assertEqual(s_items[b"BODY[]"], d_items[b"BODY[]"])
        self.assertEqual(s_items[b"INTERNALDATE"], d_items[b"INTERNALDATE"])
        self.assertEqual(set(s_items[b"FLAGS"]) - {b"\\Recent"},
                         set(d_items[b"FLAGS"]) - {b"\\Recent"})
        self.assertIn(b"$Work", d_items[b"FLAGS"])

    def test_copy_errors(self):
        c = self.c
        _, tagged = c.command("COPY 1 Nowhere")
        self.assertRegex(tagged, rb"^T\d+ NO \[TRYCREATE\]")
        _, tagged = c.command("MOVE 1 Nowhere")
        self.assertRegex(tagged, rb"^T\d+ NO \[TRYCREATE\]")
        for bad in ("COPY 0 Archive", "COPY x Archive", "COPY 1", "COPY 9 Archive", "MOVE 1:x Trash"):
            _, tagged = c.command(bad)
            self.assertRegex(tagged, rb"^T\d+ (BAD|NO)", bad)
        # A UID set that matches nothing: OK, no COPYUID (RFC 4315 4).
        _, tagged = c.command("UID COPY 100:200 Archive")
        self.assertRegex(tagged, rb"^T\d+ OK")
        self.assertNotIn(b"COPYUID", tagged)
        # Nothing was expunged by the failed MOVE.
        untagged, _ = c.ok("SEARCH ALL")
        self.assertEqual(untagged[0], b"* SEARCH 1 2 3 4 5")

    def test_move(self):
        c = self.c
        untagged, tagged = c.command("MOVE 2:3 Trash")
        self.assertRegex(tagged, rb"^T\d+ OK")
        # RFC 6851 3.3: COPYUID in an untagged OK, then the EXPUNGEs.
        self.assertRegex(untagged[0], rb"^\* OK \[COPYUID \d+ 2:3|^\* OK \[COPYUID \d+ 2,3")
        self.assertEqual(untagged[1:], [b"* 3 EXPUNGE", b"* 2 EXPUNGE"])
        untagged, _ = c.ok("UID SEARCH ALL")
        self.assertEqual(untagged[0], b"* SEARCH 1 4 5")
        # UID MOVE.
        untagged, tagged = c.command("UID MOVE 5 Trash")
        self.assertRegex(untagged[0], rb"^\* OK \[COPYUID \d+ 5 3\]")
        self.assertEqual(untagged[1:], [b"* 3 EXPUNGE"])
        self.assertRegex(tagged, rb"^T\d+ OK")
        c.ok("EXAMINE Trash")
        untagged, _ = c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects = [fetch_items(l)[1][b"BODY[HEADER.FIELDS (SUBJECT)]"] for l in untagged]
        self.assertEqual(subjects, [b"Subject: m2\r\n\r\n", b"Subject: m3\r\n\r\n",
                                    b"Subject: m5\r\n\r\n"])
        self.assertIn(b"$Work", fetch_items(untagged[0])[1][b"FLAGS"])
        # The files moved in the Maildir too.
        trash_cur = os.listdir(os.path.join(self.server.maildir("alice", "Trash"), "cur"))
        self.assertEqual(len(trash_cur), 3)
        inbox = (os.listdir(os.path.join(self.server.maildir("alice"), "cur")) +
                 os.listdir(os.path.join(self.server.maildir("alice"), "new")))
        self.assertEqual(len(inbox), 2)
        # MOVE within one mailbox gives new UIDs.
        c.ok("SELECT INBOX")
        untagged, tagged = c.command("MOVE 1 INBOX")
        self.assertRegex(tagged, rb"^T\d+ OK")
        self.assertTrue(any(re.match(rb"^\* OK \[COPYUID \d+ 1 6\]", u) for u in untagged), untagged)
        # The copy's EXISTS comes after the original's EXPUNGE (Dovecot's
        # order): the count is the one left once the expunge is applied.
        self.assertRegex(untagged[0], rb"^\* OK \[COPYUID ")
        self.assertEqual(untagged[1:3], [b"* 1 EXPUNGE", b"* 2 EXISTS"])
        self.assertRegex(untagged[3], rb"^\* \d+ RECENT$")
        self.assertEqual(len(untagged), 4, untagged)

    def test_uid_expunge(self):
        c = self.c
        c.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
        untagged, tagged = c.command("UID EXPUNGE 2:3,5")
        self.assertRegex(tagged, rb"^T\d+ OK")
        # Only \Deleted messages in the set: UIDs 2 and 3 (5 is not \Deleted).
        self.assertEqual(untagged, [b"* 3 EXPUNGE", b"* 2 EXPUNGE"])
        untagged, _ = c.ok("UID SEARCH ALL")
        self.assertEqual(untagged[0], b"* SEARCH 1 4 5")
        untagged, _ = c.ok("EXPUNGE")
        self.assertEqual(untagged, [b"* 2 EXPUNGE", b"* 1 EXPUNGE"])
        untagged, _ = c.ok("UID SEARCH ALL")
        self.assertEqual(untagged[0], b"* SEARCH 5")
        _, tagged = c.command("UID EXPUNGE")
        self.assertRegex(tagged, rb"^T\d+ BAD")
        # CLOSE expunges silently; UNSELECT does not expunge.
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        untagged, _ = c.ok("UNSELECT")
        self.assertEqual(untagged, [])
        c.ok("SELECT INBOX")
        untagged, _ = c.ok("CLOSE")
        self.assertEqual(untagged, [])
        untagged, _ = c.ok("STATUS INBOX (MESSAGES)")
        self.assertIn(b"MESSAGES 0", untagged[0])

    def test_readonly(self):
        c = self.c
        c.ok("EXAMINE INBOX")
        for cmd in ("STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "MOVE 1 Trash", "UID EXPUNGE 1"):
            _, tagged = c.command(cmd)
            self.assertRegex(tagged, rb"^T\d+ NO \[READ-ONLY\]", cmd)
        # COPY from a read-only mailbox is fine.
        c.ok("COPY 1 Trash")


if __name__ == "__main__":
    mgtest.main()
