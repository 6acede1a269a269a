#!/usr/bin/python3
"""Mailbox commands: CREATE (hierarchies, special use), RENAME (children,
INBOX), DELETE, SUBSCRIBE/UNSUBSCRIBE/LSUB, LIST with LIST-EXTENDED,
LIST-STATUS and SPECIAL-USE, NAMESPACE, STATUS, CAPABILITY/ID/ENABLE,
non-ASCII names (modified UTF-7) and names that try to leave the user's
directory."""
import os
import re

import mgtest
from mgtest import parse_sexp

SPECIAL = {"Drafts": b"\\Drafts", "Sent": b"\\Sent", "Trash": b"\\Trash",
           "Junk": b"\\Junk", "Archive": b"\\Archive"}


def list_entries(untagged, kind=b"LIST"):
    """{name (wire form, str): set of attributes} of * LIST lines."""
    out = {}
    for line in untagged:
        if not line.startswith(b"* " + kind + b" "):
            continue
        items = parse_sexp(line[len(kind) + 3:])
        attrs, delim, name = items[0], items[1], items[2]
        assert delim == b"/", line
        out[name.decode()] = set(attrs)
    return out


class MailboxCase(mgtest.MgTestCase):
    def setUp(self):
        super().setUp()
        self.c = self.raw()

    def names(self, pattern='"*"', ref='""'):
        untagged, _ = self.c.ok(f"LIST {ref} {pattern}")
        return list_entries(untagged)

    def no(self, cmd, code=None):
        _, tagged = self.c.command(cmd)
        self.assertRegex(tagged, rb"^T\d+ NO", cmd)
        if code:
            self.assertIn(b"[" + code.encode() + b"]", tagged, cmd)
        return tagged

    def bad(self, cmd):
        _, tagged = self.c.command(cmd)
        self.assertRegex(tagged, rb"^T\d+ BAD", cmd)


class TestCapabilities(MailboxCase):
    def test_capabilities_namespace_id_enable(self):
        c = self.c
        untagged, _ = c.ok("CAPABILITY")
        caps = set(untagged[0].split()[2:])
        for cap in (b"IMAP4rev1", b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"ID", b"ENABLE",
                    b"UNSELECT", b"LITERAL+", b"CHILDREN", b"SPECIAL-USE", b"LIST-EXTENDED",
                    b"LIST-STATUS", b"SASL-IR"):
            self.assertIn(cap, caps)
        self.assertTrue(any(c.startswith(b"APPENDLIMIT=") for c in caps))
        # No STARTTLS (implicit TLS), no LOGINDISABLED, no AUTH= after login.
        self.assertFalse({b"STARTTLS", b"LOGINDISABLED"} & caps)
        self.assertFalse(any(c.startswith(b"AUTH=") for c in caps))
        # The greeting shows the pre-login list.
        self.assertIn(b"AUTH=PLAIN", c.greeting)
        untagged, _ = c.ok("NAMESPACE")
        self.assertEqual(untagged, [b'* NAMESPACE (("" "/")) NIL NIL'])
        untagged, _ = c.ok('ID ("name" "mgtest" "version" "1")')
        self.assertTrue(untagged[0].startswith(b'* ID ("name" "Mailgenic"'), untagged)
        untagged, _ = c.ok("ID NIL")
        self.bad('ID ("odd")')
        untagged, _ = c.ok("ENABLE CONDSTORE")
        self.assertEqual(untagged, [b"* ENABLED"])
        self.bad("ENABLE")
        self.bad("CAPABILITY extra")
        _, tagged = c.command("STARTTLS")
        self.assertRegex(tagged, rb"^T\d+ BAD")


class TestList(MailboxCase):
    def test_special_use_folders(self):
        entries = self.names()
        self.assertEqual(set(entries), {"INBOX"} | set(SPECIAL))
        for name, attr in SPECIAL.items():
            self.assertIn(attr, entries[name])
            self.assertIn(b"\\HasNoChildren", entries[name])
        untagged, _ = self.c.ok('LIST (SPECIAL-USE) "" "*"')
        self.assertEqual(set(list_entries(untagged)), set(SPECIAL))
        untagged, _ = self.c.ok('LIST "" "*" RETURN (SPECIAL-USE)')
        self.assertEqual(len(list_entries(untagged)), 6)
        # They are subscribed.
        untagged, _ = self.c.ok('LSUB "" "*"')
        self.assertEqual(set(list_entries(untagged, b"LSUB")), {"INBOX"} | set(SPECIAL))
        # CREATE-SPECIAL-USE.
        self.c.ok('CREATE "All Mail" (USE (\\All))')
        entries = self.names('"All Mail"')
        self.assertIn(b"\\All", entries["All Mail"])
        self.no('CREATE Flagged (USE (\\Flagged))', "USEATTR")
        # A renamed special-use folder keeps its use; the next login does not
        # make another one.
        self.c.ok('RENAME Sent "Sent Items"')
        self.c.close()
        self.c = self.raw()
        entries = self.names()
        self.assertNotIn("Sent", entries)
        self.assertIn(b"\\Sent", entries["Sent Items"])
        # Deleted: the next login makes it again (as Dovecot's auto=create).
        self.c.ok("DELETE Junk")
        self.c.close()
        self.c = self.raw()
        self.assertIn(b"\\Junk", self.names()["Junk"])

    def test_hierarchy_and_patterns(self):
        c = self.c
        c.ok('CREATE "Work/Projects/2024"')
        c.ok('CREATE "Work/Clients/"')   # a trailing separator is allowed
        entries = self.names()
        for name in ("Work", "Work/Projects", "Work/Projects/2024", "Work/Clients"):
            self.assertIn(name, entries)
        self.assertIn(b"\\HasChildren", entries["Work"])
        self.assertIn(b"\\HasNoChildren", entries["Work/Projects/2024"])
        self.assertEqual(set(self.names('"Work/%"')), {"Work/Projects", "Work/Clients"})
        self.assertEqual(set(self.names('"%"')), {"INBOX", "Work"} | set(SPECIAL))
        self.assertEqual(set(self.names('"*2024"')), {"Work/Projects/2024"})
        self.assertEqual(set(self.names('"%"', ref='"Work/"')), {"Work/Projects", "Work/Clients"})
        self.assertEqual(set(self.names('"inbox"')), {"INBOX"})  # INBOX in any case
        self.assertEqual(set(self.names('"nothing*"')), set())
        untagged, _ = c.ok('LIST "" ""')
        self.assertEqual(untagged, [b'* LIST (\\Noselect) "/" ""'])
        # LIST-EXTENDED: several patterns, RETURN options.
        untagged, _ = c.ok('LIST "" ("INBOX" "Work/%") RETURN (CHILDREN)')
        self.assertEqual(set(list_entries(untagged)), {"INBOX", "Work/Projects", "Work/Clients"})
        c.ok("CREATE Existing")
        self.no("CREATE Existing", "ALREADYEXISTS")
        self.no("CREATE INBOX")
        self.no("CREATE inbox")
        self.bad("CREATE")
        self.bad('LIST "" "*" RETURN (BOGUS)')
        self.bad('LIST (RECURSIVEMATCH) "" "*"')
        self.bad('LIST (BOGUS) "" "*"')

    def test_list_children_and_order(self):
        """Names that sort between a parent and its children ("a-1", "a.b"
        before "a/b"), a subscription that outlived its mailbox, many
        mailboxes: each listed once, in order, with the right children."""
        c = self.c
        tags = []
        for name in ["a/b/c", "a-1", "a.b", "ab", "a/b-x", "keep/gone"] + \
                [f"bulk/{i:03d}" for i in range(300)]:
            tags.append(c.next_tag())
            c.send(f'{tags[-1]} CREATE "{name}"\r\n')
        for tag in tags:
            _, tagged = c.read_until_tagged(tag)
            self.assertRegex(tagged, rb"^T\d+ OK")
        c.ok('SUBSCRIBE "keep/gone"')
        c.ok('DELETE "keep/gone"')
        untagged, _ = c.ok('LIST "" "*"')
        names = [list(list_entries([l]))[0] for l in untagged]
        self.assertEqual(names[0], "INBOX")
        self.assertEqual(names[1:], sorted(names[1:], key=lambda n: n.encode()))
        self.assertEqual(len(names), len(set(names)))
        entries = list_entries(untagged)
        self.assertEqual(len(entries), 1 + len(SPECIAL) + 9 + 300)
        for name, has in (("a", True), ("a/b", True), ("a/b/c", False), ("a-1", False),
                          ("a.b", False), ("ab", False), ("a/b-x", False), ("bulk", True),
                          ("bulk/000", False), ("bulk/299", False), ("keep", False)):
            with self.subTest(name=name):
                self.assertIn(b"\\HasChildren" if has else b"\\HasNoChildren", entries[name])
        self.assertNotIn("keep/gone", entries)
        untagged, _ = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        keep = [l for l in untagged if l.endswith(b' keep ("CHILDINFO" ("SUBSCRIBED"))')]
        self.assertEqual(len(keep), 1, untagged)
        untagged, _ = c.ok('LSUB "" "%"')
        self.assertEqual(list_entries(untagged, b"LSUB")["keep"], {b"\\Noselect"})

    def test_list_status(self):
        c = self.c
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"s{i}"))
        c.ok("SELECT INBOX")
        c.ok("STORE 1 +FLAGS (\\Seen)")
        untagged, _ = c.ok('LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))')
        status = [l for l in untagged if l.startswith(b"* STATUS")]
        self.assertEqual(len(status), 6, untagged)
        inbox = [l for l in status if l.startswith(b"* STATUS INBOX")]
        self.assertEqual(inbox, [b"* STATUS INBOX (MESSAGES 3 UNSEEN 2 UIDNEXT 4)"])
        # Each STATUS follows its LIST line.
        for i, line in enumerate(untagged):
            if line.startswith(b"* STATUS"):
                name = line.split(b" ")[2]
                self.assertTrue(untagged[i - 1].endswith(b" " + name), (untagged[i - 1], line))
        untagged, _ = c.ok("STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)")
        self.assertRegex(untagged[0], rb"^\* STATUS INBOX \(MESSAGES 3 RECENT 0 UIDNEXT 4 "
                                      rb"UIDVALIDITY \d+ UNSEEN 2 SIZE \d+\)$")
        self.no("STATUS Nowhere (MESSAGES)", "NONEXISTENT")
        self.bad("STATUS INBOX (BOGUS)")
        self.bad("STATUS INBOX ()")
        self.bad("STATUS INBOX")

    def test_subscriptions_and_lsub(self):
        c = self.c
        c.ok('CREATE "Lists/dev"')
        c.ok('CREATE "Lists/users"')
        c.ok('SUBSCRIBE "Lists/dev"')
        untagged, _ = c.ok('LSUB "" "*"')
        self.assertIn("Lists/dev", list_entries(untagged, b"LSUB"))
        self.assertNotIn("Lists/users", list_entries(untagged, b"LSUB"))
        # RFC 3501 6.3.9: with %, a subscribed child makes its parent show,
        # \Noselect, when the parent itself is not subscribed.
        untagged, _ = c.ok('LSUB "" "%"')
        lsub = list_entries(untagged, b"LSUB")
        self.assertIn("Lists", lsub)
        self.assertIn(b"\\Noselect", lsub["Lists"])
        self.assertNotIn("Lists/dev", lsub)
        # LIST (SUBSCRIBED) and RECURSIVEMATCH.
        untagged, _ = c.ok('LIST (SUBSCRIBED) "" "Lists/*"')
        sub = list_entries(untagged)
        self.assertEqual(set(sub), {"Lists/dev"})
        self.assertIn(b"\\Subscribed", sub["Lists/dev"])
        untagged, _ = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        line = [l for l in untagged if l.endswith(b" Lists") or b' Lists (' in l]
        self.assertEqual(len(line), 1, untagged)
        self.assertIn(b'("CHILDINFO" ("SUBSCRIBED"))', line[0])
        untagged, _ = c.ok('LIST "" "Lists/*" RETURN (SUBSCRIBED)')
        ret = list_entries(untagged)
        self.assertIn(b"\\Subscribed", ret["Lists/dev"])
        self.assertNotIn(b"\\Subscribed", ret["Lists/users"])
        # CHILDINFO only for a subscribed descendant that the patterns do
        # not list by itself: with "*dev" (or a list naming both), Lists/dev
        # is answered and Lists is not.
        for pattern in ('"*dev"', '("Lists" "Lists/dev")'):
            with self.subTest(pattern=pattern):
                untagged, _ = c.ok(f'LIST (SUBSCRIBED RECURSIVEMATCH) "" {pattern}')
                self.assertEqual(set(list_entries(untagged)), {"Lists/dev"}, untagged)
        untagged, _ = c.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Lists")')
        self.assertEqual(len(untagged), 1, untagged)
        self.assertTrue(untagged[0].endswith(b' Lists ("CHILDINFO" ("SUBSCRIBED"))'), untagged)
        # A subscription may outlive its mailbox: \NonExistent.
        c.ok('DELETE "Lists/dev"')
        untagged, _ = c.ok('LIST (SUBSCRIBED) "" "Lists/*"')
        self.assertIn(b"\\NonExistent", list_entries(untagged)["Lists/dev"])
        c.ok('UNSUBSCRIBE "Lists/dev"')
        untagged, _ = c.ok('LSUB "" "Lists/*"')
        self.assertEqual(list_entries(untagged, b"LSUB"), {})
        self.no("SUBSCRIBE Nowhere", "NONEXISTENT")
        # Subscriptions follow a RENAME.
        c.ok('SUBSCRIBE "Lists/users"')
        c.ok('RENAME Lists Groups')
        untagged, _ = c.ok('LSUB "" "*"')
        lsub = list_entries(untagged, b"LSUB")
        self.assertIn("Groups/users", lsub)
        self.assertNotIn("Lists/users", lsub)


class TestCreateRenameDelete(MailboxCase):
    def test_rename(self):
        c = self.c
        c.ok('CREATE "A/B/C"')
        _, tagged = c.append("A/B", mgtest.make_message(subject="in A/B"))
        c.ok('RENAME "A" "Z"')
        entries = self.names()
        self.assertNotIn("A", entries)
        for name in ("Z", "Z/B", "Z/B/C"):
            self.assertIn(name, entries)
        untagged, _ = c.ok('STATUS "Z/B" (MESSAGES)')
        self.assertIn(b"MESSAGES 1", untagged[0])
        # Into a new hierarchy: parents are made.
        c.ok('RENAME "Z/B/C" "New/Deep/C"')
        self.assertIn("New/Deep", self.names())
        self.no('RENAME "Nowhere" "X"', "NONEXISTENT")
        self.no('RENAME "Z" "Trash"', "ALREADYEXISTS")
        self.no('RENAME "Z" "Z/inside"')
        self.no('RENAME "Z" "INBOX"')
        # On disk: Maildir++ folders renamed, nothing left behind.
        root = self.server.maildir("alice")
        dirs = sorted(d for d in os.listdir(root) if d.startswith("."))
        self.assertIn(".Z.B", dirs)
        self.assertNotIn(".A", dirs)
        self.assertNotIn(".A.B", dirs)

    def test_rename_inbox(self):
        c = self.c
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"i{i}"))
        c.ok("SELECT INBOX")
        c.ok("STORE 1 +FLAGS (\\Flagged)")
        c.ok('RENAME INBOX "Old Mail"')
        # RFC 3501 6.3.5: the messages move, INBOX stays, empty.
        untagged, _ = c.ok('STATUS "Old Mail" (MESSAGES)')
        self.assertIn(b"MESSAGES 3", untagged[0])
        untagged, _ = c.ok("STATUS INBOX (MESSAGES)")
        self.assertIn(b"MESSAGES 0", untagged[0])
        c.ok('SELECT "Old Mail"')
        untagged, _ = c.ok("FETCH 1 (FLAGS)")
        self.assertIn(b"\\Flagged", untagged[0])
        # New mail still goes to INBOX.
        self.deliver(["alice"], mgtest.make_message(subject="new"))
        untagged, _ = c.ok("STATUS INBOX (MESSAGES)")
        self.assertIn(b"MESSAGES 1", untagged[0])

    def test_delete(self):
        c = self.c
        c.ok('CREATE "P/Q"')
        self.no('DELETE "P"')               # children first (as Dovecot)
        c.ok('DELETE "P/Q"')
        c.ok('DELETE "P"')
        self.no('DELETE "P"', "NONEXISTENT")
        self.no("DELETE INBOX", "CANNOT")
        self.no("DELETE inbox")
        # A refused DELETE of the selected INBOX leaves it selected.
        c.ok("SELECT INBOX")
        untagged, _ = c.command("DELETE INBOX")
        self.assertFalse(any(b"[CLOSED]" in l for l in untagged), untagged)
        c.ok("NOOP")
        c.ok("SEARCH ALL")
        # Deleting the selected mailbox closes it.
        c.ok("CREATE Sel")
        c.ok("SELECT Sel")
        untagged, _ = c.ok("DELETE Sel")
        self.assertTrue(any(b"[CLOSED]" in l for l in untagged), untagged)
        _, tagged = c.command("FETCH 1 FLAGS")
        self.assertRegex(tagged, rb"^T\d+ BAD")
        self.assertFalse(os.path.exists(self.server.maildir("alice", "Sel")))
        # A new mailbox of the same name gets a new UIDVALIDITY.
        c.ok("CREATE Again")
        untagged, _ = c.ok("STATUS Again (UIDVALIDITY)")
        v1 = int(re.search(rb"UIDVALIDITY (\d+)", untagged[0]).group(1))
        c.ok("DELETE Again")
        c.ok("CREATE Again")
        untagged, _ = c.ok("STATUS Again (UIDVALIDITY)")
        v2 = int(re.search(rb"UIDVALIDITY (\d+)", untagged[0]).group(1))
        self.assertNotEqual(v1, v2)


class TestNames(MailboxCase):
    def test_modified_utf7(self):
        c = self.c
        c.ok('CREATE "&AOQ-pfel"')              # "äpfel"
        c.ok('CREATE "Entw&APw-rfe/&ZeVnLIqe-"')  # "Entwürfe/日本語"
        entries = self.names()
        self.assertIn("&AOQ-pfel", entries)
        self.assertIn("Entw&APw-rfe/&ZeVnLIqe-", entries)
        # On disk the folder name is UTF-8.
        self.assertTrue(os.path.isdir(self.server.maildir("alice", "äpfel")))
        _, tagged = c.append("&AOQ-pfel", mgtest.make_message())
        self.assertRegex(tagged, rb"^T\d+ OK")
        c.ok('SELECT "&AOQ-pfel"')
        c.ok('RENAME "&AOQ-pfel" "&ANY-l"')   # "Öl"
        self.assertIn("&ANY-l", self.names())
        # "&-" is "&".
        c.ok('CREATE "R&-D"')
        self.assertIn("R&-D", self.names())
        self.assertTrue(os.path.isdir(self.server.maildir("alice", "R&D")))

    def test_invalid_modified_utf7(self):
        # Bad base64, unterminated shifts, ASCII encoded ("&AGE-" is "a"),
        # adjacent encoded runs, lone surrogates, NUL.
        for name in ("&Jjo!", "&AGE-&AGE-", "&AGE-", "&", "&Jjo", "&ZeVnLIqe", "&AOQ",
                     "&AOQ-&AOQ-", "&AAA-", "&2D3-"):
            with self.subTest(name=name):
                for cmd in ("CREATE", "SELECT", "STATUS", "DELETE"):
                    arg = " (MESSAGES)" if cmd == "STATUS" else ""
                    _, tagged = self.c.command(f"{cmd} {mgtest.quote(name)}{arg}")
                    self.assertRegex(tagged, rb"^T\d+ NO", (cmd, name))
        # A valid surrogate pair (U+1F600) is fine.
        self.c.ok('CREATE "&2D3eAA-"')
        entries = self.names()
        self.assertFalse([n for n in entries if "Jjo" in n or n == "&"], entries)

    def test_names_that_escape_are_refused(self):
        c = self.c
        before = sorted(os.listdir(os.path.dirname(self.server.maildir("alice"))))
        for name in ("..", "../bob", "a/../b", "a/./b", ".", "/abs", "a//b", "a/", "/",
                     "~", "*", "%", "a*b", "a%b", "Work/..", "../../../../etc"):
            with self.subTest(name=name):
                _, tagged = c.command(f"CREATE {mgtest.quote(name)}")
                if name == "a/":
                    # "a/" declares a hierarchy (RFC 3501 6.3.3): creates "a".
                    self.assertRegex(tagged, rb"^T\d+ OK")
                    continue
                if name in ("~",):
                    # A tilde is an ordinary character here.
                    self.assertRegex(tagged, rb"^T\d+ (OK|NO)")
                    continue
                self.assertRegex(tagged, rb"^T\d+ NO", name)
        # Control characters, in a literal (a quoted string cannot hold them).
        for raw in (b"a\x01b", b"tab\there", b"nl\nx", b"del\x7f"):
            tag = c.next_tag()
            c.send(f"{tag} CREATE {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
            _, tagged = c.read_until_tagged(tag)
            self.assertRegex(tagged, rb"^T\d+ (NO|BAD)", raw)
        # The same names in other commands.
        for cmd in ('SELECT ".."', 'RENAME INBOX ".."', 'RENAME "a" "../x"', 'DELETE ".."',
                    'STATUS "../bob" (MESSAGES)', 'SUBSCRIBE "a/../b"'):
            _, tagged = c.command(cmd)
            self.assertRegex(tagged, rb"^T\d+ (NO|BAD)", cmd)
        _, tagged = c.append("../bob", mgtest.make_message())
        self.assertRegex(tagged, rb"^T\d+ NO")
        # Nothing appeared beside the user's directory, nor in bob's.
        after = sorted(os.listdir(os.path.dirname(self.server.maildir("alice"))))
        self.assertEqual(after, before)
        for root, dirs, files in os.walk(self.server.mail_dir):
            for d in dirs:
                self.assertNotIn("..", d)
        self.assertFalse(os.path.exists(os.path.join(self.server.mail_dir, "etc")))

    def test_long_and_deep_names(self):
        c = self.c
        _, tagged = c.command(f'CREATE "{"x" * 600}"')
        self.assertRegex(tagged, rb"^T\d+ NO")
        deep = "/".join(["d"] * 17)
        _, tagged = c.command(f'CREATE "{deep}"')
        self.assertRegex(tagged, rb"^T\d+ NO")
        ok = "/".join(["d"] * 16)
        c.ok(f'CREATE "{ok}"')


if __name__ == "__main__":
    mgtest.main()
