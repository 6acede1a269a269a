#!/usr/bin/python3
"""STORE and flags: FLAGS / +FLAGS / -FLAGS with and without .SILENT,
system flags and keywords (case-insensitive), what may not be stored,
the FLAGS and PERMANENTFLAGS lists, and the limit of 64 keywords."""
import re

import mgtest
from mgtest import fetch_items


class TestFlags(mgtest.MgTestCase):
    def setUp(self):
        super().setUp()
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"f{i}"))
        self.c = self.raw()
        self.c.ok("SELECT INBOX")

    def flags(self, seq):
        untagged, _ = self.c.ok(f"FETCH {seq} (FLAGS)")
        return set(fetch_items(untagged[0])[1][b"FLAGS"]) - {b"\\Recent"}

    def test_store_variants(self):
        c = self.c
        untagged, _ = c.ok("STORE 1 FLAGS (\\Seen \\Flagged)")
        self.assertEqual(len(untagged), 1)
        self.assertEqual(self.flags(1), {b"\\Seen", b"\\Flagged"})
        c.ok("STORE 1 +FLAGS (\\Answered $Label1)")
        self.assertEqual(self.flags(1), {b"\\Seen", b"\\Flagged", b"\\Answered", b"$Label1"})
        c.ok("STORE 1 -FLAGS (\\Seen $LABEL1)")   # keywords are case-insensitive
        self.assertEqual(self.flags(1), {b"\\Flagged", b"\\Answered"})
        c.ok("STORE 1 FLAGS ()")
        self.assertEqual(self.flags(1), set())
        untagged, _ = c.ok("STORE 1:3 +FLAGS.SILENT (\\Draft)")
        self.assertEqual(untagged, [])
        self.assertEqual(self.flags("2"), {b"\\Draft"})
        # Unchanged messages still get a FETCH (RFC 3501 6.4.6).
        untagged, _ = c.ok("STORE 1:3 +FLAGS (\\Draft)")
        self.assertEqual(len(untagged), 3)
        untagged, _ = c.ok("UID STORE 2 FLAGS (\\Deleted)")
        self.assertEqual(untagged, [b"* 2 FETCH (FLAGS (\\Deleted \\Recent) UID 2)"])
        # A single flag without parentheses is allowed.
        c.ok("STORE 3 +FLAGS \\Seen")
        self.assertIn(b"\\Seen", self.flags(3))

    def test_new_keyword_announced_before_fetch(self):
        """A keyword new to the mailbox: FLAGS and PERMANENTFLAGS come
        before the FETCH responses that carry it (Dovecot), once."""
        c = self.c
        untagged, _ = c.ok("STORE 1:2 +FLAGS ($Fresh)")
        self.assertEqual(len(untagged), 4, untagged)
        self.assertEqual(untagged[0], b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Fresh)")
        self.assertEqual(untagged[1], b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted "
                                      b"\\Seen \\Draft $Fresh \\*)] Flags permitted.")
        self.assertRegex(untagged[2], rb"^\* 1 FETCH \(FLAGS \(.*\$Fresh\)\)$")
        self.assertRegex(untagged[3], rb"^\* 2 FETCH \(FLAGS \(.*\$Fresh\)\)$")
        # Known now: no second announcement, nor at the next sync.
        untagged, _ = c.ok("STORE 3 +FLAGS ($Fresh)")
        self.assertEqual(len(untagged), 1, untagged)
        untagged, _ = c.ok("NOOP")
        self.assertEqual(untagged, [])
        # .SILENT still announces the new keyword, and only that.
        untagged, _ = c.ok("UID STORE 1 +FLAGS.SILENT (Other)")
        self.assertEqual(len(untagged), 2, untagged)
        self.assertTrue(untagged[0].startswith(b"* FLAGS ("), untagged)
        self.assertIn(b"$Fresh Other)", untagged[0])
        self.assertIn(b"PERMANENTFLAGS", untagged[1])
        # A keyword another session created: announced before our FETCH.
        d = self.raw()
        d.ok("SELECT INBOX")
        d.ok("STORE 2 +FLAGS.SILENT (FromD)")
        untagged, _ = c.ok("STORE 3 +FLAGS (Mine)")
        self.assertTrue(untagged[0].startswith(b"* FLAGS ("), untagged)
        self.assertIn(b"FromD Mine)", untagged[0])
        fetches = [u for u in untagged if b"FETCH" in u]
        self.assertEqual(untagged.index(fetches[0]), 2, untagged)
        self.assertEqual(self.flags(2), {b"$Fresh", b"FromD"})

    def test_invalid_flags(self):
        c = self.c
        for bad in ("STORE 1 +FLAGS (\\Recent)", "STORE 1 +FLAGS (\\Bogus)", "STORE 1 +FLAGS (\\*)",
                    "STORE 1 +FLAGS (a*b)", "STORE 1 +FLAGS (a%b)", "STORE 1 +FLAGS (\"quoted\")",
                    "STORE 1 +FLAGS ((nested))", "STORE 1 FROB (\\Seen)", "STORE 1 +FLAGS",
                    "STORE 1 +FLAGS.LOUD (\\Seen)", "STORE 1 +FLAGS (a]b)"):
            with self.subTest(bad=bad):
                _, tagged = c.command(bad)
                self.assertRegex(tagged, rb"^T\d+ BAD", bad)
                c.ok("NOOP")
        self.assertEqual(self.flags(1), set())

    def test_flag_lists_and_keyword_limit(self):
        c = self.c
        c.ok("STORE 1 +FLAGS (First)")
        untagged, _ = c.ok("SELECT INBOX")
        text = b"\n".join(untagged)
        self.assertIn(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft First)", text)
        self.assertIn(b"[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft First \\*)]",
                      text)
        for i in range(2, 65):
            c.ok(f"STORE 2 +FLAGS.SILENT (kw{i})")
        _, tagged = c.command("STORE 3 +FLAGS (one-too-many)")
        self.assertRegex(tagged, rb"^T\d+ NO \[LIMIT\]")
        _, tagged = c.append("INBOX", mgtest.make_message(), flags="another-new")
        self.assertRegex(tagged, rb"^T\d+ NO \[LIMIT\]")
        # Known keywords still work, and \* is gone from PERMANENTFLAGS.
        c.ok("STORE 3 +FLAGS (kw10 FIRST)")
        self.assertEqual(self.flags(3), {b"kw10", b"First"})
        untagged, _ = c.ok("EXAMINE INBOX")
        perm = [l for l in untagged if b"PERMANENTFLAGS" in l]
        self.assertEqual(perm, [b"* OK [PERMANENTFLAGS ()] Read-only mailbox."])
        untagged, _ = c.ok("SELECT INBOX")
        perm = [l for l in untagged if b"PERMANENTFLAGS" in l][0]
        self.assertNotIn(b"\\*", perm)
        self.assertEqual(len(re.findall(rb"kw\d+", perm)), 63)


if __name__ == "__main__":
    mgtest.main()
