#!/usr/bin/python3
"""FETCH against the real daemon: exact bytes of BODY[] and its sections,
ENVELOPE and BODYSTRUCTURE against Dovecot's vectors, partial fetches,
\\Seen handling of BODY[] and BODY.PEEK[]."""
import calendar
import glob
import imaplib
import json
import os
import re
import time

import mgtest
from mgtest import crlf, fetch_items

VECTORS = os.path.join(mgtest.SOURCE_DIR, "tests", "data", "corpora",
                       "dovecot-bodystructure-vectors")


def load_vectors(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


# A nested message whose every part boundary is known, built from pieces:
#   1    text/plain
#   2    multipart/mixed
#   2.1  message/rfc822 (its header, then a text/plain body)
#   2.2  text/html
NESTED_TOP = (b"From: Alice Example <alice@example.test>\r\n"
              b"To: Bob <bob@example.test>, carol@example.test\r\n"
              b"Cc: dave@example.test\r\n"
              b"Subject: nested\r\n"
              b"Date: Tue, 1 Feb 2022 10:00:00 +0100\r\n"
              b"Message-ID: <nested@example.test>\r\n"
              b"MIME-Version: 1.0\r\n"
              b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n")
P1_MIME = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
P1_BODY = b"Part one.\r\nSecond line.\r\n"
P2_MIME = b"Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n"
P21_MIME = b"Content-Type: message/rfc822\r\n\r\n"
P21_HEADER = (b"From: Inner Sender <inner@remote.test>\r\n"
              b"To: alice@example.test\r\n"
              b"Subject: the inner one\r\n"
              b"Date: Mon, 31 Jan 2022 09:00:00 +0000\r\n"
              b"Content-Type: text/plain; charset=utf-8\r\n\r\n")
P21_BODY = b"Inner body.\r\n"
P22_MIME = b"Content-Type: text/html\r\n\r\n"
P22_BODY = b"<p>html</p>\r\n"
P2_BODY = (b"--inner\r\n" + P21_MIME + P21_HEADER + P21_BODY +
           b"\r\n--inner\r\n" + P22_MIME + P22_BODY + b"\r\n--inner--\r\n")
NESTED_TEXT = (b"Preamble.\r\n--outer\r\n" + P1_MIME + P1_BODY +
               b"\r\n--outer\r\n" + P2_MIME + P2_BODY +
               b"\r\n--outer--\r\nEpilogue.\r\n")
NESTED = NESTED_TOP + b"\r\n" + NESTED_TEXT


class FetchCase(mgtest.MgTestCase):
    def fetch1(self, c, what, seq="1", uid=False):
        """FETCH of one message; returns (items dict, all untagged lines)."""
        untagged, tagged = c.command(f"{'UID ' if uid else ''}FETCH {seq} {what}")
        self.assertRegex(tagged, rb"^T\d+ OK", untagged)
        fetches = [fetch_items(u) for u in untagged if re.match(rb"^\* \d+ FETCH", u)]
        self.assertEqual(len(fetches), 1, untagged)
        return fetches[0][1], untagged

    def flags(self, c, seq="1"):
        items, _ = self.fetch1(c, "(FLAGS)", seq)
        return set(f.decode() for f in items[b"FLAGS"])


class TestFetchBytes(FetchCase):
    def test_delivered_message_body_exact(self):
        msg = mgtest.make_message(subject="bytes", body=b"Line 1\r\n.dot line\r\n\r\nend\r\n")
        msg = b"X-Binary: \xe4\xff\r\n" + msg  # raw 8-bit bytes pass unchanged
        self.deliver(["alice"], msg)
        expected = (b"Return-Path: <sender@remote.test>\r\n"
                    b"Delivered-To: alice@example.test\r\n" + msg)
        c = self.raw()
        c.ok("SELECT INBOX")
        items, _ = self.fetch1(c, "(BODY.PEEK[] RFC822.SIZE)")
        self.assertEqual(items[b"BODY[]"], expected)
        self.assertEqual(int(items[b"RFC822.SIZE"]), len(expected))
        items, _ = self.fetch1(c, "(RFC822)")
        self.assertEqual(items[b"RFC822"], expected)
        # imaplib sees the same bytes.
        m = self.imap()
        m.select("INBOX", readonly=True)
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0][1], expected)

    def test_sections_of_nested_message(self):
        c = self.raw()
        untagged, tagged = c.append("INBOX", NESTED)
        self.assertRegex(tagged, rb"OK \[APPENDUID \d+ 1\]")
        c.ok("SELECT INBOX")
        cases = [
            ("BODY.PEEK[]", "BODY[]", NESTED),
            ("BODY.PEEK[HEADER]", "BODY[HEADER]", NESTED_TOP + b"\r\n"),
            ("BODY.PEEK[TEXT]", "BODY[TEXT]", NESTED_TEXT),
            ("BODY.PEEK[1]", "BODY[1]", P1_BODY),
            ("BODY.PEEK[1.MIME]", "BODY[1.MIME]", P1_MIME),
            ("BODY.PEEK[2]", "BODY[2]", P2_BODY),
            ("BODY.PEEK[2.MIME]", "BODY[2.MIME]", P2_MIME),
            ("BODY.PEEK[2.1]", "BODY[2.1]", P21_HEADER + P21_BODY),
            ("BODY.PEEK[2.1.MIME]", "BODY[2.1.MIME]", P21_MIME),
            ("BODY.PEEK[2.1.HEADER]", "BODY[2.1.HEADER]", P21_HEADER),
            ("BODY.PEEK[2.1.TEXT]", "BODY[2.1.TEXT]", P21_BODY),
            ("BODY.PEEK[2.1.1]", "BODY[2.1.1]", P21_BODY),
            ("BODY.PEEK[2.2]", "BODY[2.2]", P22_BODY),
            ("BODY.PEEK[HEADER.FIELDS (From To)]", "BODY[HEADER.FIELDS (FROM TO)]",
             b"From: Alice Example <alice@example.test>\r\n"
             b"To: Bob <bob@example.test>, carol@example.test\r\n\r\n"),
            ("BODY.PEEK[HEADER.FIELDS (to SUBJECT x-missing)]",
             "BODY[HEADER.FIELDS (TO SUBJECT X-MISSING)]",
             b"To: Bob <bob@example.test>, carol@example.test\r\nSubject: nested\r\n\r\n"),
            ("BODY.PEEK[2.1.HEADER.FIELDS (Subject)]", "BODY[2.1.HEADER.FIELDS (SUBJECT)]",
             b"Subject: the inner one\r\n\r\n"),
            ("RFC822.HEADER", "RFC822.HEADER", NESTED_TOP + b"\r\n"),
            # A part that does not exist: an empty string, as Dovecot.
            ("BODY.PEEK[7]", "BODY[7]", b""),
        ]
        for item, resp, expected in cases:
            with self.subTest(item=item):
                items, _ = self.fetch1(c, f"({item})")
                self.assertIn(resp.encode(), items, items.keys())
                self.assertEqual(items[resp.encode()], expected)
        hf_not, _ = self.fetch1(c, "(BODY.PEEK[HEADER.FIELDS.NOT (From To Cc Date Message-ID)])")
        (value,) = hf_not.values()
        self.assertEqual(value, b"Subject: nested\r\nMIME-Version: 1.0\r\n"
                                b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n")
        # Nothing above was more than a peek.
        self.assertNotIn("\\Seen", self.flags(c))
        # RFC822.TEXT is the body and sets \Seen.
        items, _ = self.fetch1(c, "(RFC822.TEXT)")
        self.assertEqual(items[b"RFC822.TEXT"], NESTED_TEXT)
        self.assertIn(b"FLAGS", items)
        self.assertIn(b"\\Seen", items[b"FLAGS"])

    def test_partial_fetches(self):
        msg = crlf("Subject: partial\n\n0123456789abcdefghij\n")
        c = self.raw()
        c.append("INBOX", msg)
        c.ok("SELECT INBOX")
        cases = [
            ("BODY.PEEK[]<0.10>", b"BODY[]<0>", msg[:10]),
            ("BODY.PEEK[]<5.7>", b"BODY[]<5>", msg[5:12]),
            ("BODY.PEEK[]<10.100000>", b"BODY[]<10>", msg[10:]),
            (f"BODY.PEEK[]<{len(msg)}.10>", f"BODY[]<{len(msg)}>".encode(), b""),
            ("BODY.PEEK[]<100000.10>", b"BODY[]<100000>", b""),
            ("BODY.PEEK[TEXT]<2.5>", b"BODY[TEXT]<2>", b"23456"),
            ("BODY.PEEK[TEXT]<1000.5>", b"BODY[TEXT]<1000>", b""),
            ("BODY.PEEK[HEADER]<0.4>", b"BODY[HEADER]<0>", b"Subj"),
            ("BODY.PEEK[1]<0.3>", b"BODY[1]<0>", b"012"),
        ]
        for item, resp, expected in cases:
            with self.subTest(item=item):
                items, untagged = self.fetch1(c, f"({item})")
                self.assertEqual(items.get(resp), expected, untagged)
        # Bad partials are BAD.
        for item in ("BODY[]<0.0>", "BODY[]<a.1>", "BODY[]<1>", "BODY[]<-1.2>"):
            with self.subTest(item=item):
                _, tagged = c.command(f"FETCH 1 ({item})")
                self.assertRegex(tagged, rb"^T\d+ BAD")
        self.assertNotIn("\\Seen", self.flags(c))

    def test_seen_handling(self):
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"m{i}"))
        c = self.raw()
        c.ok("SELECT INBOX")
        items, _ = self.fetch1(c, "(BODY.PEEK[])", "1")
        self.assertNotIn(b"FLAGS", items)
        self.assertNotIn("\\Seen", self.flags(c, "1"))
        # BODY[] sets \Seen, and the response says so.
        items, _ = self.fetch1(c, "(BODY[])", "1")
        self.assertIn(b"\\Seen", items[b"FLAGS"])
        self.assertIn("\\Seen", self.flags(c, "1"))
        # A second BODY[]: \Seen is already there; FLAGS need not come.
        items, _ = self.fetch1(c, "(BODY[] FLAGS)", "1")
        self.assertIn(b"\\Seen", items[b"FLAGS"])
        # BODY[TEXT], BODY[1] and RFC822 set it too.
        for seq, item in (("2", "BODY[TEXT]"), ("3", "RFC822")):
            items, _ = self.fetch1(c, f"({item})", seq)
            self.assertIn(b"\\Seen", items[b"FLAGS"], item)
        # In a read-only mailbox nothing changes.
        c.ok("STORE 1:3 -FLAGS.SILENT (\\Seen)")
        c.ok("EXAMINE INBOX")
        items, _ = self.fetch1(c, "(BODY[])", "1")
        self.assertNotIn(b"FLAGS", items)
        self.assertNotIn("\\Seen", self.flags(c, "1"))
        # UID FETCH carries the UID, FETCH of a UID set works by UID.
        c.ok("SELECT INBOX")
        items, _ = self.fetch1(c, "(BODY[HEADER.FIELDS (Subject)])", seq="3", uid=True)
        self.assertEqual(items[b"UID"], b"3")
        self.assertEqual(items[b"BODY[HEADER.FIELDS (SUBJECT)]"], b"Subject: m2\r\n\r\n")
        self.assertIn(b"\\Seen", items[b"FLAGS"])

    def test_macros_and_simple_items(self):
        msg = crlf("From: a@b.test\nSubject: macro\nDate: Wed, 2 Mar 2022 12:00:00 +0000\n\nbody\n")
        c = self.raw()
        c.append("INBOX", msg, flags="\\Flagged $Work", date="02-Mar-2022 13:14:15 +0100")
        c.ok("SELECT INBOX")
        items, _ = self.fetch1(c, "ALL")
        self.assertEqual(set(items), {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE"})
        # The instant is kept; the zone it is shown in is the server's.
        self.assertEqual(time.mktime(imaplib.Internaldate2tuple(
            b'INTERNALDATE "' + items[b"INTERNALDATE"] + b'"')),
            calendar.timegm((2022, 3, 2, 12, 14, 15, 0, 0, 0)))
        self.assertEqual(int(items[b"RFC822.SIZE"]), len(msg))
        self.assertEqual(set(items[b"FLAGS"]), {b"\\Flagged", b"$Work", b"\\Recent"})
        items, _ = self.fetch1(c, "FAST")
        self.assertEqual(set(items), {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"})
        items, _ = self.fetch1(c, "FULL")
        self.assertEqual(set(items), {b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE",
                                      b"BODY"})
        items, _ = self.fetch1(c, "UID")
        self.assertEqual(items, {b"UID": b"1"})
        for bad in ("1 (FROB)", "1 ()", "1", "x FLAGS", "1 (BODY[HEADER.FIELDS])", "0 FLAGS",
                    "1 BODY[", "1 (BODY[1.2.3.MIME.X])"):
            with self.subTest(bad=bad):
                _, tagged = c.command(f"FETCH {bad}")
                self.assertRegex(tagged, rb"^T\d+ BAD")
        # A sequence number beyond the mailbox: BAD (RFC 3501 9: a
        # sequence number greater than the number of messages is invalid),
        # a UID beyond it: nothing.
        _, tagged = c.command("FETCH 5 FLAGS")
        self.assertRegex(tagged, rb"^T\d+ (BAD|NO)")
        untagged, tagged = c.command("UID FETCH 5:7 FLAGS")
        self.assertRegex(tagged, rb"^T\d+ OK")
        self.assertEqual(untagged, [])
        # "UID FETCH 5:*" always includes the last message (RFC 3501 6.4.8).
        untagged, tagged = c.command("UID FETCH 5:* FLAGS")
        self.assertEqual(len(untagged), 1, untagged)
        self.assertIn(b"UID 1", untagged[0])

    def test_slow_reader(self):
        """Output waits for a client that does not read (back-pressure), and
        every byte arrives in order once it does."""
        msgs = [mgtest.make_message(subject=f"big {i}", body=(b"%02d" % i) * 300000 + b"\r\n")
                for i in range(8)]
        c = self.raw()
        for m in msgs:
            _, tagged = c.append("INBOX", m, nonsync=True)
            self.assertRegex(tagged, rb"^T\d+ OK")
        c.ok("EXAMINE INBOX")
        c.send(b"S1 FETCH 1:* (BODY.PEEK[])\r\n")
        time.sleep(2)           # not reading: the server holds back its output
        # Another session is served meanwhile.
        d = self.raw()
        d.ok("NOOP")
        untagged, tagged = c.read_until_tagged("S1")
        self.assertRegex(tagged, rb"^S1 OK")
        self.assertEqual([fetch_items(u)[1][b"BODY[]"] for u in untagged], msgs)


class TestFetchNul(FetchCase):
    """A literal is CHAR8 without NUL (RFC 3501 9): message bytes go out
    with NUL replaced by 0x80, as Dovecot does for non-BINARY fetches, and
    the literal's length stays that of the stored message."""
    HEAD_NUL = b"X-Nul: a\0b\r\n"
    BODY_NUL = b"before\0after\r\n\0\0\0\r\nend\0\r\n"

    def stored(self, msg):
        return (b"Return-Path: <sender@remote.test>\r\n"
                b"Delivered-To: alice@example.test\r\n" + msg)

    def check_no_nul(self, untagged):
        for u in untagged:
            self.assertFalse(b"\0" in u, "a NUL in the response")

    def test_nul_replaced_in_every_content_item(self):
        msg = mgtest.make_message(subject="nul", body=self.BODY_NUL,
                                  extra_headers=["X-Nul: a\0b"])
        self.assertEqual(msg.count(b"\0"), 6)
        self.deliver(["alice"], msg)     # over LMTP, NULs and all
        stored = self.stored(msg)
        seen = stored.replace(b"\0", b"\x80")
        head, text = seen.split(b"\r\n\r\n", 1)
        head += b"\r\n\r\n"
        c = self.raw()
        c.ok("SELECT INBOX")
        items, untagged = self.fetch1(c, "(BODY.PEEK[] RFC822.SIZE)")
        self.check_no_nul(untagged)
        self.assertEqual(items[b"BODY[]"], seen)
        self.assertEqual(len(items[b"BODY[]"]), len(stored))
        self.assertEqual(int(items[b"RFC822.SIZE"]), len(stored))
        off = stored.index(b"\0")
        cases = [
            ("BODY.PEEK[HEADER]", "BODY[HEADER]", head),
            ("BODY.PEEK[TEXT]", "BODY[TEXT]", text),
            ("BODY.PEEK[1]", "BODY[1]", text),
            ("BODY.PEEK[HEADER.FIELDS (X-Nul)]", "BODY[HEADER.FIELDS (X-NUL)]",
             b"X-Nul: a\x80b\r\n\r\n"),
            ("RFC822.HEADER", "RFC822.HEADER", head),
            (f"BODY.PEEK[]<{off - 2}.5>", f"BODY[]<{off - 2}>", seen[off - 2:off + 3]),
            ("BODY.PEEK[TEXT]<6.10>", "BODY[TEXT]<6>", text[6:16]),
            ("BODY.PEEK[1]<0.7>", "BODY[1]<0>", b"before\x80"),
        ]
        for item, resp, expected in cases:
            with self.subTest(item=item):
                items, untagged = self.fetch1(c, f"({item})")
                self.check_no_nul(untagged)
                self.assertEqual(items[resp.encode()], expected)
        # The items that set \Seen go the same way.
        for item, resp, expected in (("RFC822.TEXT", "RFC822.TEXT", text),
                                     ("BODY[TEXT]", "BODY[TEXT]", text),
                                     ("RFC822", "RFC822", seen),
                                     ("BODY[]", "BODY[]", seen)):
            with self.subTest(item=item):
                items, untagged = self.fetch1(c, f"({item})")
                self.check_no_nul(untagged)
                self.assertEqual(items[resp.encode()], expected)
        # The stored message keeps its NULs.
        (path,) = [p for d in ("new", "cur")
                   for p in glob.glob(os.path.join(self.server.maildir("alice"), d, "*"))]
        with open(path, "rb") as f:
            self.assertEqual(f.read(), stored)

    def test_nul_in_large_message(self):
        """Above the size read at once, the message is streamed in chunks
        and parsed in the thread pool: the same replacement applies."""
        body = (b"x" * 1000 + b"\0\r\n") * 300
        msg = mgtest.make_message(subject="big nul", body=body)
        self.deliver(["alice"], msg)
        stored = self.stored(msg)
        seen = stored.replace(b"\0", b"\x80")
        c = self.raw()
        c.ok("SELECT INBOX")
        items, untagged = self.fetch1(c, "(BODY.PEEK[] BODY.PEEK[TEXT]<100000.3000>)")
        self.check_no_nul(untagged)
        self.assertEqual(items[b"BODY[]"], seen)
        text = seen.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(items[b"BODY[TEXT]<100000>"], text[100000:103000])


class TestVectors(FetchCase):
    def test_bodystructure_vectors_appended(self):
        """APPEND stores CR LF messages unchanged: BODY and BODYSTRUCTURE must be
        Dovecot's strings exactly (the vectors count sizes as CRLF)."""
        # (imap-bodystructure-normalize.json turns BODY strings into
        # BODYSTRUCTURE ones without the message: not a parse vector.)
        vectors = load_vectors("imap-bodystructure-parse.json")
        self.assertGreaterEqual(len(vectors), 8)
        c = self.raw()
        all_msgs = [(v["message"], v["bodystructure"], v["body"]) for v in vectors]
        for msg, _, _ in all_msgs:
            _, tagged = c.append("INBOX", crlf(msg))
            self.assertRegex(tagged, rb"^T\d+ OK")
        c.ok("EXAMINE INBOX")
        for i, (msg, bs, body) in enumerate(all_msgs, 1):
            with self.subTest(vector=i):
                untagged, _ = c.command(f"FETCH {i} (BODYSTRUCTURE)")
                self.assertEqual(len(untagged), 1)
                self.assertEqual(untagged[0].decode(),
                                 f"* {i} FETCH (BODYSTRUCTURE ({bs}))")
                untagged, _ = c.command(f"FETCH {i} (BODY)")
                self.assertEqual(untagged[0].decode(), f"* {i} FETCH (BODY ({body}))")

    def test_bodystructure_vectors_delivered(self):
        """Over LMTP two header lines come on top: BODYSTRUCTURE of the
        message does not change (the top-level size counts the body only)."""
        vectors = load_vectors("imap-bodystructure-parse.json")
        for v in vectors:
            self.deliver(["alice"], crlf(v["message"]))
        c = self.raw()
        c.ok("EXAMINE INBOX")
        for i, v in enumerate(vectors, 1):
            with self.subTest(vector=i):
                untagged, _ = c.command(f"FETCH {i} (BODYSTRUCTURE BODY.PEEK[TEXT])")
                items = fetch_items(untagged[0])[1]
                self.assertEqual(untagged[0].decode("utf-8", "replace").split(" BODY[TEXT]")[0],
                                 f"* {i} FETCH (BODYSTRUCTURE ({v['bodystructure']})")
                head, _, text = crlf(v["message"]).partition(b"\r\n\r\n")
                self.assertEqual(items[b"BODY[TEXT]"], text)

    def test_envelope_vectors(self):
        vectors = load_vectors("imap-envelope-parse.json")
        c = self.raw()
        for v in vectors:
            c.append("INBOX", crlf(v["message"]))
        c.ok("EXAMINE INBOX")
        for i, v in enumerate(vectors, 1):
            with self.subTest(vector=i):
                untagged, _ = c.command(f"FETCH {i} ENVELOPE")
                self.assertEqual(untagged[0].decode(), f"* {i} FETCH (ENVELOPE ({v['envelope']}))")

    def test_nested_envelope_and_structure(self):
        c = self.raw()
        c.append("INBOX", NESTED)
        c.ok("EXAMINE INBOX")
        untagged, _ = c.command("FETCH 1 (ENVELOPE BODYSTRUCTURE)")
        items = fetch_items(untagged[0])[1]
        env = items[b"ENVELOPE"]
        self.assertEqual(env[0], b"Tue, 1 Feb 2022 10:00:00 +0100")
        self.assertEqual(env[1], b"nested")
        self.assertEqual(env[2], [[b"Alice Example", None, b"alice", b"example.test"]])
        self.assertEqual(env[5], [[b"Bob", None, b"bob", b"example.test"],
                                  [None, None, b"carol", b"example.test"]])
        self.assertEqual(env[6], [[None, None, b"dave", b"example.test"]])
        self.assertEqual(env[9], b"<nested@example.test>")
        bs = items[b"BODYSTRUCTURE"]
        # (part1)(part2) "mixed" ("boundary" "outer") NIL NIL NIL
        self.assertEqual(bs[0][:2], [b"text", b"plain"])
        self.assertEqual(int(bs[0][6]), len(P1_BODY))
        self.assertEqual(int(bs[0][7]), 2)
        inner = bs[1]
        self.assertEqual(inner[2], b"mixed")
        msg_part = inner[0]
        self.assertEqual(msg_part[:2], [b"message", b"rfc822"])
        self.assertEqual(int(msg_part[6]), len(P21_HEADER + P21_BODY))
        self.assertEqual(msg_part[7][1], b"the inner one")          # its ENVELOPE
        self.assertEqual(msg_part[8][:2], [b"text", b"plain"])      # its BODYSTRUCTURE
        self.assertEqual(int(msg_part[9]), (P21_HEADER + P21_BODY).count(b"\r\n"))
        self.assertEqual(inner[1][:2], [b"text", b"html"])
        self.assertEqual(bs[2], b"mixed")
        self.assertEqual(bs[3], [b"boundary", b"outer"])


if __name__ == "__main__":
    mgtest.main()
