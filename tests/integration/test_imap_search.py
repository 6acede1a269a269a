#!/usr/bin/python3
"""SEARCH and UID SEARCH: every search key of RFC 3501 6.4.4, sets,
parenthesised lists, OR/NOT, CHARSET UTF-8 with non-ASCII text in an
RFC 2047 subject and in quoted-printable and base64 bodies, BADCHARSET,
and malformed programs."""
import base64

import mgtest
from mgtest import crlf

M1 = crlf("""From: "Alice Example" <alice@a.test>
To: bob@b.test
Cc: carol@c.test
Bcc: dave@d.test
Subject: Hello world
Date: Wed, 01 Jan 2020 10:00:00 +0000
Message-ID: <m1@a.test>

The quick brown fox jumps over the lazy dog.
""")
M2 = crlf("""From: Bob <bob@b.test>
To: alice@example.test
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=
Date: Mon, 15 Mar 2021 12:00:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Die Stra=C3=9Fe ist lang und die Sonne scheint.
""")
M3_TEXT = "Un café naïve, s'il vous plaît.\n" + ("padding line " * 6 + "\n") * 60
M3 = crlf("""From: carol@c.test
To: team@x.test
Subject: base64 body
Date: Mon, 20 Jun 2022 08:00:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

""") + crlf(base64.encodebytes(M3_TEXT.encode()).decode())
M4 = crlf("""From: zed@z.test
To: zed@z.test
Subject: custom header
X-Custom: magic-value
Date: Mon, 10 Jan 2022 23:30:00 -0800

small
""")
DATES = ["02-Jan-2020 10:00:00 +0000", "16-Mar-2021 10:00:00 +0000",
         "21-Jun-2022 10:00:00 +0000", "11-Jan-2022 10:00:00 +0000"]


class TestSearch(mgtest.MgTestCase):
    @classmethod
    def setUpClass(cls):
        assert len(M3) > 4000, len(M3)

    def setUp(self):
        super().setUp()
        a = self.raw()
        # A first message, expunged: UIDs are then sequence numbers + 1.
        a.append("INBOX", crlf("Subject: gone\n\ngone\n"))
        flags = ["\\Seen \\Answered", "\\Flagged $Work", "\\Deleted \\Draft", None]
        for msg, f, d in zip((M1, M2, M3, M4), flags, DATES):
            _, tagged = a.append("INBOX", msg, flags=f, date=d)
            self.assertIn(b"OK", tagged)
        a.ok("SELECT INBOX")     # takes \Recent of 1-4
        a.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("UID EXPUNGE 1")
        a.close()
        self.c = self.raw()
        self.c.ok("SELECT INBOX")
        self.deliver(["alice"], mgtest.make_message(subject="fifth", to="alice@example.test"))
        untagged, _ = self.c.ok("NOOP")
        self.assertIn(b"* 5 EXISTS", untagged)
        self.assertIn(b"* 1 RECENT", untagged)

    def search(self, program, uid=False):
        untagged, tagged = self.c.command(("UID " if uid else "") + "SEARCH " + program)
        self.assertRegex(tagged, rb"^T\d+ OK", program)
        lines = [l for l in untagged if l.startswith(b"* SEARCH")]
        self.assertEqual(len(lines), 1, untagged)
        return sorted(int(x) for x in lines[0].split()[2:])

    def check(self, cases):
        for program, expected in cases:
            with self.subTest(program=program):
                self.assertEqual(self.search(program), expected)

    def test_flag_keys(self):
        self.check([
            ("ALL", [1, 2, 3, 4, 5]),
            ("ANSWERED", [1]), ("UNANSWERED", [2, 3, 4, 5]),
            ("DELETED", [3]), ("UNDELETED", [1, 2, 4, 5]),
            ("DRAFT", [3]), ("UNDRAFT", [1, 2, 4, 5]),
            ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4, 5]),
            ("SEEN", [1]), ("UNSEEN", [2, 3, 4, 5]),
            ("KEYWORD $Work", [2]), ("KEYWORD $work", [2]), ("UNKEYWORD $Work", [1, 3, 4, 5]),
            ("KEYWORD NeverUsed", []), ("UNKEYWORD NeverUsed", [1, 2, 3, 4, 5]),
            ("RECENT", [5]), ("NEW", [5]), ("OLD", [1, 2, 3, 4]),
        ])

    def test_size_and_set_keys(self):
        self.check([
            ("LARGER 4000", [3]), ("SMALLER 4000", [1, 2, 4, 5]),
            ("LARGER 100000", []), ("SMALLER 1", []),
            ("1,3:4", [1, 3, 4]), ("*", [5]), ("4:*", [4, 5]), ("*:4", [4, 5]),
            ("UID 3:4", [2, 3]), ("UID *", [5]), ("UID 1", []), ("UID 6,2", [1, 5]),
            ("2:3 UNSEEN", [2, 3]),
        ])
        self.assertEqual(self.search("UID 3:4", uid=True), [3, 4])
        self.assertEqual(self.search("ALL", uid=True), [2, 3, 4, 5, 6])
        self.assertEqual(self.search("1:2", uid=True), [2, 3])

    def test_header_keys(self):
        self.check([
            ("FROM bob", [2]), ("FROM ALICE", [1]), ('FROM "Alice Example"', [1]),
            ("TO alice@example.test", [2, 5]), ("CC carol", [1]), ("BCC dave", [1]),
            ("SUBJECT hello", [1]), ('SUBJECT "HELLO WORLD"', [1]), ("SUBJECT nothing", []),
            ("HEADER X-Custom magic", [4]), ('HEADER X-Custom ""', [4]),
            ('HEADER X-None ""', []), ("HEADER Message-ID <m1@a.test>", [1]),
            ("FROM b.test", [2]),
        ])

    def test_address_keys_see_the_parsed_addresses(self):
        # FROM/TO/CC/BCC (and HEADER on an address field) match the address
        # list as parsed, like Dovecot: a comment or white space inside an
        # addr-spec does not hide it, a trailing comment is the display
        # name, group names and members count.
        msgs = [
            "From: <ann.lee (work) @ (main) corp.test>\nTo: x@y.test\n\none\n",
            "From: ann.lee@corp.test (Annie L)\nTo: x@y.test\n\ntwo\n",
            "From: x@y.test\nTo: crew: sam@ship.test, kim@ship.test;,\n"
            " shore: pat@port.test;\n\nthree\n",
        ]
        self.c.ok("CREATE Addr")
        for m in msgs:
            self.c.append("Addr", crlf(m))
        self.c.ok("SELECT Addr")
        self.check([
            ("FROM ann.lee@corp.test", [1, 2]), ("HEADER From ann.lee@corp.test", [1, 2]),
            ("FROM annie", [2]), ("FROM work", []),
            ("TO crew", [3]), ("TO shore", [3]), ("TO kim@ship", [3]), ("TO pat@port.test", [3]),
            ("TO nobody", []), ('HEADER To ""', [1, 2, 3]),
        ])

    def test_body_and_text(self):
        self.check([
            ("BODY fox", [1]), ("BODY FOX", [1]), ("BODY nothing-like-this", []),
            ("TEXT magic-value", [4]), ("TEXT fox", [1]), ("BODY magic-value", []),
            ("BODY padding", [3]),
            # Bodies are searched decoded: the quoted-printable bytes do not match.
            ('BODY "Stra=C3"', []),
        ])

    def test_dates(self):
        self.check([
            ("BEFORE 1-Jan-2021", [1]), ("ON 16-Mar-2021", [2]), ("SINCE 1-Jan-2022", [3, 4, 5]),
            ("BEFORE 2-Jan-2020", []), ("ON 02-Jan-2020", [1]), ("SINCE 21-Jun-2022", [3, 5]),
            ("SENTBEFORE 1-Jan-2021", [1, 5]), ("SENTON 15-Mar-2021", [2]),
            ("SENTSINCE 1-Jan-2022", [3, 4]), ('SENTON "20-Jun-2022"', [3]),
        ])
        # RFC 3501: SENT* disregard time and timezone: the Date: header says
        # 10 Jan (in UTC it is 11 Jan).
        self.assertEqual(self.search("SENTON 10-Jan-2022"), [4])

    def test_logic(self):
        self.check([
            ("NOT SEEN", [2, 3, 4, 5]), ("OR SEEN FLAGGED", [1, 2]),
            ("(FLAGGED SEEN)", []), ("OR (SEEN ANSWERED) DELETED", [1, 3]),
            ("NOT (OR SEEN DRAFT)", [2, 4, 5]), ("UNSEEN SMALLER 4000", [2, 4, 5]),
            ("OR OR SEEN DRAFT FLAGGED", [1, 2, 3]), ("NOT NOT SEEN", [1]),
            ("((SEEN))", [1]), ("OR BODY fox SUBJECT custom", [1, 4]),
            ("NOT BODY fox", [2, 3, 4, 5]),
        ])

    def test_charset_utf8(self):
        c = self.c

        def lit(program_prefix, text):
            data = text.encode()
            tag = c.next_tag()
            c.send(f"{tag} SEARCH CHARSET UTF-8 {program_prefix} {{{len(data)}+}}\r\n".encode() +
                   data + b"\r\n")
            untagged, tagged = c.read_until_tagged(tag)
            self.assertRegex(tagged, rb"^T\d+ OK", text)
            return sorted(int(x) for x in untagged[0].split()[2:])

        # RFC 2047 subject, decoded before matching.
        self.assertEqual(lit("SUBJECT", "Grüße"), [2])
        self.assertEqual(lit("SUBJECT", "Köln"), [2])
        self.assertEqual(lit("SUBJECT", "aus k"), [2])          # ASCII case folding
        # Quoted-printable and base64 bodies, decoded.
        self.assertEqual(lit("BODY", "Straße"), [2])
        self.assertEqual(lit("BODY", "café naïve"), [3])
        self.assertEqual(lit("TEXT", "plaît"), [3])
        self.assertEqual(lit("BODY", "Grüße"), [])
        # US-ASCII and UTF-8 by name; quoted UTF-8 strings work too.
        self.assertEqual(self.search("CHARSET US-ASCII SUBJECT hello"), [1])
        self.assertEqual(self.search("CHARSET utf-8 SUBJECT hello"), [1])
        # An unknown charset: NO [BADCHARSET (list)].
        _, tagged = c.command("SEARCH CHARSET X-UNKNOWN-CS SUBJECT hello")
        self.assertRegex(tagged, rb"^T\d+ NO \[BADCHARSET( \([^)]*UTF-8[^)]*\))?\]")

    def test_bad_programs(self):
        for program in ("", "FROB", "BEFORE notadate", "BEFORE 31-Feb-2020", "LARGER x",
                        "LARGER", "(SEEN", "SEEN)", "OR SEEN", "NOT", "KEYWORD", "HEADER X",
                        "UID", "UID x", "0:3", "CHARSET", "FROM", "((((SEEN)))"):
            with self.subTest(program=program):
                _, tagged = self.c.command(("SEARCH " + program).rstrip())
                self.assertRegex(tagged, rb"^T\d+ BAD", program)
                self.c.ok("NOOP")  # 20 BADs in a row end the session
        # Deep nesting is bounded, not a crash.
        _, tagged = self.c.command("SEARCH " + "NOT " * 5000 + "SEEN")
        self.assertRegex(tagged, rb"^T\d+ (OK|BAD)")
        _, tagged = self.c.command("SEARCH " + "(" * 500 + "SEEN" + ")" * 500)
        self.assertRegex(tagged, rb"^T\d+ (OK|BAD)")
        self.c.ok("NOOP")


if __name__ == "__main__":
    mgtest.main()
