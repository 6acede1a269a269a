#!/usr/bin/python3
"""Several sessions on one mailbox (RFC 3501 5.2, 7.4.1) and IDLE (RFC 2177):
untagged FETCH FLAGS, EXPUNGE and EXISTS arrive at the right moments, never
an EXPUNGE during FETCH, STORE or SEARCH by sequence number, \\Recent for
exactly one session, and an idling client hears of changes at once."""
import re
import time

import mgtest
from mgtest import fetch_items


def untagged_of(lines, kind):
    """[(number, rest)] of '* n KIND ...' lines."""
    out = []
    for line in lines:
        m = re.match(rb"^\* (\d+) " + kind.encode() + rb"\b(.*)$", line, re.S)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


class SessionCase(mgtest.MgTestCase):
    def fill(self, n):
        for i in range(n):
            self.deliver(["alice"], mgtest.make_message(subject=f"message {i + 1}"))

    def select(self, c, box="INBOX"):
        untagged, tagged = c.ok(f"SELECT {box}")
        return untagged


class TestConcurrentSessions(SessionCase):
    def test_flags_expunge_exists_reach_the_other_session(self):
        self.fill(4)
        a, b = self.raw(), self.raw()
        self.select(a)
        self.select(b)
        # A changes flags: B hears at its next command.
        untagged, _ = a.ok("STORE 1 +FLAGS (\\Flagged $Important)")
        self.assertEqual(len(untagged_of(untagged, "FETCH")), 1)
        untagged, _ = b.ok("NOOP")
        fetches = untagged_of(untagged, "FETCH")
        self.assertEqual(len(fetches), 1, untagged)
        self.assertEqual(fetches[0][0], 1)
        self.assertIn(b"\\Flagged", fetches[0][1])
        self.assertIn(b"$Important", fetches[0][1])
        # A new keyword: B gets the new FLAGS list too.
        self.assertTrue(any(l.startswith(b"* FLAGS (") and b"$Important" in l for l in untagged),
                        untagged)
        # A's own change is not echoed back to A.
        untagged, _ = a.ok("NOOP")
        self.assertEqual(untagged_of(untagged, "FETCH"), [])
        # .SILENT is silent for A, not for B.
        untagged, _ = a.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
        self.assertEqual(untagged_of(untagged, "FETCH"), [])
        untagged, _ = b.ok("NOOP")
        self.assertEqual([n for n, _ in untagged_of(untagged, "FETCH")], [3])

        # A expunges message 2.
        a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        untagged, _ = a.ok("EXPUNGE")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [(2, b"")])
        # B: no EXPUNGE during FETCH, STORE or SEARCH by sequence number;
        # its sequence numbers stay as they were.
        untagged, tagged = b.command("FETCH 1:4 (UID)")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [], untagged)
        uids = {n: fetch_items(l)[1][b"UID"] for l in untagged if b" FETCH " in l
                for n in [fetch_items(l)[0]]}
        self.assertEqual(uids.get(1), b"1")
        self.assertEqual(uids.get(3), b"3")
        self.assertEqual(uids.get(4), b"4")
        # The expunged message 2 is reported as such (Dovecot's answer).
        self.assertRegex(tagged, rb"^T\d+ (OK|NO \[EXPUNGEISSUED\])")
        untagged, _ = b.ok("STORE 4 +FLAGS (\\Answered)")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [], untagged)
        self.assertEqual([n for n, _ in untagged_of(untagged, "FETCH")], [4])
        untagged, _ = b.ok("SEARCH ALL")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [], untagged)
        self.assertIn(b"* SEARCH 1 3 4", untagged)  # 2 is gone, 4 is still 4
        # NOOP may: now it comes, and numbers move.
        untagged, _ = b.ok("NOOP")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [(2, b"")])
        untagged, _ = b.ok("FETCH 3 (UID)")
        self.assertEqual(fetch_items(untagged[0])[1][b"UID"], b"4")

        # A delivery: both hear EXISTS at their next command.
        self.fill(1)
        untagged, _ = b.ok("NOOP")
        self.assertEqual(untagged_of(untagged, "EXISTS"), [(4, b"")])
        untagged, _ = a.ok("NOOP")
        self.assertEqual(untagged_of(untagged, "EXISTS"), [(4, b"")])

    def test_uid_commands_may_report_expunges(self):
        self.fill(3)
        a, b = self.raw(), self.raw()
        self.select(a)
        self.select(b)
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        untagged, _ = b.ok("UID FETCH 1:* (FLAGS)")
        # RFC 3501 7.4.1 forbids EXPUNGE only for the sequence-number forms.
        expunges = untagged_of(untagged, "EXPUNGE")
        self.assertEqual(expunges, [(1, b"")], untagged)
        untagged, _ = b.ok("FETCH 1 (UID)")
        self.assertEqual(fetch_items(untagged[0])[1][b"UID"], b"2")

    def test_exists_counts_unreported_expunges(self):
        """New mail during a FETCH while an expunge is pending: EXISTS
        counts the message not yet reported as expunged."""
        self.fill(3)
        a, b = self.raw(), self.raw()
        self.select(a)
        self.select(b)
        a.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        self.fill(1)
        untagged, _ = b.command("FETCH 1 (FLAGS)")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [])
        self.assertEqual(untagged_of(untagged, "EXISTS"), [(4, b"")], untagged)
        untagged, _ = b.ok("NOOP")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [(3, b"")])
        untagged, _ = b.ok("FETCH 3 (UID)")
        self.assertEqual(fetch_items(untagged[0])[1][b"UID"], b"4")
        # Both views agree now.
        a.ok("NOOP")
        ua, _ = a.ok("UID SEARCH ALL")
        ub, _ = b.ok("UID SEARCH ALL")
        self.assertEqual([l for l in ua if l.startswith(b"* SEARCH")],
                         [l for l in ub if l.startswith(b"* SEARCH")])

    def test_recent_for_one_session_only(self):
        a, b = self.raw(), self.raw()
        self.select(a)
        self.select(b)
        self.fill(2)
        ua, _ = a.ok("NOOP")
        ub, _ = b.ok("NOOP")
        self.assertEqual(untagged_of(ua, "EXISTS"), [(2, b"")])
        self.assertEqual(untagged_of(ub, "EXISTS"), [(2, b"")])
        recent_a = untagged_of(ua, "RECENT")
        recent_b = untagged_of(ub, "RECENT")
        # Exactly one of them has the two new messages as \Recent.
        self.assertEqual(sorted([recent_a[0][0], recent_b[0][0]]), [0, 2], (ua, ub))
        fa, _ = a.ok("FETCH 1:2 (FLAGS)")
        fb, _ = b.ok("FETCH 1:2 (FLAGS)")
        recent_flags = sum(b"\\Recent" in l for l in fa + fb)
        self.assertEqual(recent_flags, 2, (fa, fb))
        sa, _ = a.ok("SEARCH RECENT")
        sb, _ = b.ok("SEARCH RECENT")
        self.assertEqual(sorted([sa[0], sb[0]]), [b"* SEARCH", b"* SEARCH 1 2"])
        # A third session selecting now sees none.
        c = self.raw()
        untagged = self.select(c)
        self.assertIn(b"* 0 RECENT", untagged)
        # SELECT with new mail: that session takes them, nobody else.
        self.fill(1)
        d = self.raw()
        untagged = self.select(d)
        self.assertIn(b"* 1 RECENT", untagged)
        # RECENT counts each session's \Recent messages: the two older ones
        # stay with the session that had them; the new one is d's.
        owner = a if recent_a[0][0] == 2 else b
        for other in (a, b, c):
            untagged, _ = other.ok("NOOP")
            self.assertEqual(untagged_of(untagged, "EXISTS"), [(3, b"")])
            self.assertEqual(untagged_of(untagged, "RECENT"), [(2 if other is owner else 0, b"")],
                             untagged)
            untagged, _ = other.ok("FETCH 3 (FLAGS)")
            self.assertNotIn(b"\\Recent", untagged[0])
        # EXAMINE never takes \Recent.
        self.fill(1)
        e = self.raw()
        untagged, _ = e.ok("EXAMINE INBOX")
        self.assertIn(b"* 1 RECENT", untagged)
        f = self.raw()
        untagged = self.select(f)
        self.assertIn(b"* 1 RECENT", untagged)

    def test_status_and_select_of_other_mailbox(self):
        self.fill(2)
        a, b = self.raw(), self.raw()
        self.select(a)
        untagged, _ = b.ok("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")
        self.assertIn(b"(MESSAGES 2 UNSEEN 2 UIDNEXT 3)", untagged[0])
        a.ok("STORE 1 +FLAGS (\\Seen)")
        untagged, _ = b.ok("STATUS INBOX (MESSAGES UNSEEN)")
        self.assertIn(b"(MESSAGES 2 UNSEEN 1)", untagged[0])
        # COPY into a mailbox another session has selected: it hears EXISTS.
        b.ok("SELECT Trash")
        a.ok("COPY 1:2 Trash")
        untagged, _ = b.ok("NOOP")
        self.assertEqual(untagged_of(untagged, "EXISTS"), [(2, b"")])
        # MOVE out of it: the other session hears EXPUNGE.
        a.ok("SELECT Trash")
        a.ok("MOVE 1 INBOX")
        untagged, _ = b.ok("NOOP")
        self.assertEqual(untagged_of(untagged, "EXPUNGE"), [(1, b"")])

    def test_selected_mailbox_renamed_or_deleted_by_another_session(self):
        a, b, c = self.raw(), self.raw(), self.raw()
        a.ok("CREATE Box")
        a.append("Box", mgtest.make_message(subject="in box"))
        b.ok("SELECT Box")
        # A RENAME elsewhere: the session goes on with the mailbox, whatever
        # its name now.
        a.ok("RENAME Box Renamed")
        untagged, _ = b.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"Subject: in box", untagged[0])
        b.ok("STORE 1 +FLAGS (\\Flagged)")
        untagged, _ = a.ok("STATUS Renamed (MESSAGES)")
        self.assertIn(b"MESSAGES 1", untagged[0])
        # A DELETE elsewhere: the session cannot go on (BYE, as Dovecot).
        c.ok("SELECT Renamed")
        tag = c.next_tag()
        c.send(f"{tag} IDLE\r\n")
        self.assertTrue(c.read_response().startswith(b"+"))
        a.ok("DELETE Renamed")
        c.settimeout(5)
        self.assertRegex(c.read_response(), rb"^\* BYE")
        self.assertTrue(c.is_closed())
        b.send(b"X1 NOOP\r\n")
        self.assertRegex(b.read_response(), rb"^\* BYE")
        self.assertTrue(b.is_closed())
        a.ok("NOOP")


class TestIdle(SessionCase):
    def start_idle(self, c):
        tag = c.next_tag()
        c.send(f"{tag} IDLE\r\n")
        first = c.read_response()
        self.assertTrue(first.startswith(b"+ "), first)
        return tag

    def read_until(self, c, pattern, timeout=5.0):
        """Responses until one matches; fails after timeout seconds."""
        c.settimeout(timeout)
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = c.read_response()
            seen.append(line)
            if re.match(pattern, line):
                c.settimeout(30)
                return seen
        self.fail(f"no {pattern!r} within {timeout}s: {seen!r}")

    def test_idle_hears_delivery_flags_and_expunge(self):
        self.fill(2)
        a, b = self.raw(), self.raw()
        self.select(a)
        self.select(b)
        tag = self.start_idle(b)
        self.fill(1)
        # The delivery's 250 came only once the message was stored; the
        # EXISTS follows within a second.
        t0 = time.monotonic()
        self.read_until(b, rb"^\* 3 EXISTS", timeout=5)
        self.assertLess(time.monotonic() - t0, 1.0)
        t0 = time.monotonic()
        a.ok("STORE 2 +FLAGS (\\Flagged)")
        lines = self.read_until(b, rb"^\* 2 FETCH", timeout=2)
        self.assertIn(b"\\Flagged", lines[-1])
        a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        a.ok("EXPUNGE")
        self.read_until(b, rb"^\* 1 EXPUNGE", timeout=2)
        self.assertLess(time.monotonic() - t0, 2.5)
        b.send("DONE\r\n")
        untagged, tagged = b.read_until_tagged(tag)
        self.assertRegex(tagged, rb"^T\d+ OK")
        # Numbers moved for B: message 1 is now UID 2.
        untagged, _ = b.ok("FETCH 1 (UID)")
        self.assertEqual(fetch_items(untagged[0])[1][b"UID"], b"2")

    def test_idle_reports_pending_changes_first(self):
        self.fill(1)
        a, b = self.raw(), self.raw()
        self.select(a)
        self.select(b)
        self.fill(1)
        tag = b.next_tag()
        b.send(f"{tag} IDLE\r\n")
        # What happened before IDLE is reported at once, without waiting
        # for another change.
        self.read_until(b, rb"^\* 2 EXISTS", timeout=3)
        b.send("DONE\r\n")
        _, tagged = b.read_until_tagged(tag)
        self.assertRegex(tagged, rb"^T\d+ OK")

    def test_idle_without_selected_mailbox_and_bad_done(self):
        c = self.raw()
        tag = self.start_idle(c)
        c.send("NOT DONE\r\n")
        _, tagged = c.read_until_tagged(tag)
        self.assertRegex(tagged, rb"^T\d+ BAD")
        # The session goes on.
        c.ok("NOOP")
        tag = self.start_idle(c)
        c.send("done\r\n")  # case does not matter
        _, tagged = c.read_until_tagged(tag)
        self.assertRegex(tagged, rb"^T\d+ OK")

    def test_many_idlers(self):
        self.fill(1)
        idlers = []
        for _ in range(10):
            c = self.raw()
            self.select(c)
            idlers.append((c, self.start_idle(c)))
        self.fill(1)
        for c, tag in idlers:
            self.read_until(c, rb"^\* 2 EXISTS", timeout=5)
        for c, tag in idlers:
            c.send("DONE\r\n")
            _, tagged = c.read_until_tagged(tag)
            self.assertRegex(tagged, rb"^T\d+ OK")

    def test_logout_while_idling_and_close_by_peer(self):
        c = self.raw()
        self.select(c)
        self.start_idle(c)
        c.close()
        d = self.raw()
        self.select(d)
        self.start_idle(d)
        self.fill(1)
        self.read_until(d, rb"^\* 1 EXISTS", timeout=5)
        d.send("DONE\r\n")
        d.ok("LOGOUT")


if __name__ == "__main__":
    mgtest.main()
