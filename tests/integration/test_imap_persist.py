#!/usr/bin/python3
"""What survives a restart of mgimapd, and a rebuild of the index from the
Maildir (index directory removed while stopped): UIDVALIDITY, UIDs, UIDNEXT
(never going back, not even when the highest UIDs were expunged), system
flags, keywords (restart only: see docs/imap.md), INTERNALDATE, folders,
special-use attributes and subscriptions."""
import os
import re
import shutil

import mgtest
from mgtest import fetch_items


def snapshot(c, mailbox):
    """(UIDVALIDITY, UIDNEXT, {uid: (flags, internaldate, size)}) seen with EXAMINE."""
    untagged, _ = c.ok(f"EXAMINE {mgtest.quote(mailbox)}")
    text = b"\r\n".join(untagged)
    uidvalidity = int(re.search(rb"\[UIDVALIDITY (\d+)\]", text).group(1))
    uidnext = int(re.search(rb"\[UIDNEXT (\d+)\]", text).group(1))
    exists = int(re.search(rb"\* (\d+) EXISTS", text).group(1))
    msgs = {}
    if exists:
        untagged, _ = c.ok("FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)")
        for line in untagged:
            _, items = fetch_items(line)
            flags = frozenset(f for f in items[b"FLAGS"] if f != b"\\Recent")
            msgs[int(items[b"UID"])] = (flags, items[b"INTERNALDATE"], int(items[b"RFC822.SIZE"]))
    assert len(msgs) == exists
    return uidvalidity, uidnext, msgs


def system_only(msgs):
    return {uid: (frozenset(f for f in flags if f.startswith(b"\\")), date, size)
            for uid, (flags, date, size) in msgs.items()}


class TestPersistence(mgtest.MgTestCase):
    maxDiff = None
    def populate(self):
        for i in range(6):
            self.deliver(["alice"], mgtest.make_message(subject=f"inbox {i}"))
        c = self.raw()
        c.ok('CREATE "Projects/2024"')
        c.ok('SUBSCRIBE "Projects/2024"')
        for i in range(3):
            _, tagged = c.append("Projects/2024", mgtest.make_message(subject=f"p{i}"),
                                 flags="\\Seen $Label1" if i else "\\Draft",
                                 date=f"0{i + 1}-Jan-2020 10:00:00 +0000")
            self.assertIn(b"APPENDUID", tagged)
        c.ok("SELECT INBOX")
        c.ok("STORE 1 +FLAGS (\\Seen)")
        c.ok("STORE 2 +FLAGS (\\Answered \\Flagged)")
        c.ok("STORE 3 +FLAGS (\\Deleted)")
        c.ok("STORE 4 +FLAGS (\\Draft $Forwarded Work)")
        c.ok("STORE 5 +FLAGS (\\Seen \\Answered \\Flagged \\Draft NonJunk)")
        # Expunge the highest UIDs: their numbers must never come back.
        c.ok("STORE 6 +FLAGS (\\Deleted)")
        c.ok("UID EXPUNGE 6")
        c.close()

    def state(self):
        c = self.raw()
        try:
            result = {box: snapshot(c, box) for box in ("INBOX", "Projects/2024")}
            untagged, _ = c.ok('LSUB "" "*"')
            result["lsub"] = sorted(untagged)
            untagged, _ = c.ok('LIST "" "*"')
            result["list"] = sorted(untagged)
        finally:
            c.close()
        return result

    def test_restart_keeps_everything(self):
        self.populate()
        before = self.state()
        inbox = before["INBOX"]
        self.assertEqual(sorted(inbox[2]), [1, 2, 3, 4, 5])
        self.assertEqual(inbox[1], 7)
        self.assertEqual(inbox[2][4][0], frozenset({b"\\Draft", b"$Forwarded", b"Work"}))
        self.server.restart()
        after = self.state()
        self.assertEqual(after, before)
        # New mail continues the UID sequence.
        self.deliver(["alice"], mgtest.make_message(subject="after restart"))
        c = self.raw()
        c.ok("SELECT INBOX")
        untagged, _ = c.ok("UID FETCH * UID")
        self.assertIn(b"UID 7", untagged[0])

    def test_kill9_keeps_flags(self):
        self.populate()
        before = self.state()
        self.server.kill9()
        self.server.start()
        self.assertEqual(self.state(), before)

    def test_rebuild_from_maildir(self):
        self.populate()
        before = self.state()
        self.server.stop()
        shutil.rmtree(self.server.index_dir)
        self.server.start()
        after = self.state()
        for box in ("INBOX", "Projects/2024"):
            with self.subTest(box=box):
                b_valid, b_next, b_msgs = before[box]
                a_valid, a_next, a_msgs = after[box]
                self.assertEqual(a_valid, b_valid, "UIDVALIDITY changed")
                self.assertGreaterEqual(a_next, b_next, "UIDNEXT went back")
                # UIDs, system flags, INTERNALDATE and sizes come back; keywords
                # live in the index only (docs/imap.md).
                self.assertEqual(system_only(a_msgs), system_only(b_msgs))
        # Special-use attributes and subscriptions are kept in the Maildir too.
        self.assertEqual(after["list"], before["list"])
        self.assertEqual(after["lsub"], before["lsub"])
        self.assertIn(b'* LSUB () "/" Projects/2024', after["lsub"])
        # A new message must not take an expunged UID (6).
        self.deliver(["alice"], mgtest.make_message(subject="after rebuild"))
        c = self.raw()
        c.ok("SELECT INBOX")
        untagged, _ = c.ok("UID FETCH * UID")
        uid = int(re.search(rb"UID (\d+)", untagged[0]).group(1))
        self.assertGreaterEqual(uid, before["INBOX"][1])
        self.assertNotEqual(uid, 6)

    def test_rebuild_twice_and_damaged_index(self):
        """A damaged user database is set aside and rebuilt."""
        self.populate()
        before = self.state()
        self.server.stop()
        damaged = 0
        for name in os.listdir(self.server.index_dir):
            path = os.path.join(self.server.index_dir, name)
            if name.startswith(("__db", "log.")) or not os.path.isfile(path):
                continue
            with open(path, "r+b") as f:
                f.write(b"\0garbage" * 64)
            damaged += 1
        self.assertGreater(damaged, 0, os.listdir(self.server.index_dir))
        self.server.start()
        after = self.state()
        for box in ("INBOX", "Projects/2024"):
            self.assertEqual(after[box][0], before[box][0])
            self.assertEqual(system_only(after[box][2]), system_only(before[box][2]))
            self.assertGreaterEqual(after[box][1], before[box][1])
        self.server.stop()
        shutil.rmtree(self.server.index_dir)
        self.server.start()
        again = self.state()
        for box in ("INBOX", "Projects/2024"):
            self.assertEqual(system_only(again[box][2]), system_only(before[box][2]))

    def test_files_carry_uid_and_flags(self):
        """The Maildir alone describes the mailbox (docs/storage.md)."""
        self.populate()
        cur = os.path.join(self.server.maildir("alice"), "cur")
        new = os.path.join(self.server.maildir("alice"), "new")
        names = os.listdir(cur) + os.listdir(new)
        uids = {}
        for name in names:
            m = re.search(r",U=(\d+)", name)
            self.assertIsNotNone(m, name)
            uids[int(m.group(1))] = name.split(":2,")[1] if ":2," in name else ""
        self.assertEqual(sorted(uids), [1, 2, 3, 4, 5])
        self.assertEqual(uids[1], "S")
        self.assertEqual(uids[2], "FR")
        self.assertEqual(uids[3], "T")
        self.assertEqual(uids[4], "D")
        self.assertEqual(uids[5], "DFRS")
        with open(os.path.join(self.server.maildir("alice"), "mailgenic-uidvalidity")) as f:
            self.assertRegex(f.read(), r"^\d+")


if __name__ == "__main__":
    mgtest.main()
