#!/usr/bin/python3
"""offlineimap3 between mgimapd (IMAPS, the test certificate trusted with
sslcacertfile) and a local Maildir: the first sync brings every folder
and message down (content as on the server, LF line ends); local changes
(a flag, a new message, a deletion) go up; server changes (a flag, an
expunge, a delivery, a new folder) come down; a sync with nothing to do
changes nothing on either side."""
import os
import re
import shutil
import subprocess
import unittest

import mgtest
from mgtest import fetch_items

OFFLINEIMAP = shutil.which("offlineimap")


@unittest.skipIf(OFFLINEIMAP is None, "offlineimap is not installed (Debian package offlineimap3)")
class TestOfflineimap(mgtest.MgTestCase):

    def setUp(self):
        super().setUp()
        self.local = os.path.join(self.tmp, "local")
        self.rc = os.path.join(self.tmp, "offlineimaprc")
        with open(self.rc, "w") as f:
            f.write(f"""[general]
accounts = test
metadata = {self.tmp}/offlineimap-meta
ui = basic

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {self.local}
sep = /

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {self.server.port}
remoteuser = {self.server.address("alice")}
remotepass = {self.server.password("alice")}
ssl = yes
sslcacertfile = {self.server.cert}
maxconnections = 2
""")

    def sync(self):
        r = subprocess.run([OFFLINEIMAP, "-c", self.rc, "-o", "-u", "basic"], capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, HOME=self.tmp))
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, f"offlineimap failed:\n{out}\n{self.server.log_tail()}")
        # (The banner names "an OpenSSL exception" of the licence.)
        body = out.replace("with an OpenSSL exception", "")
        self.assertNotRegex(body, r"(?i)\berror\b|warning|traceback|exception", out)
        return out

    def local_state(self):
        """{folder: sorted [(flags, content)]}; flags from the file name."""
        state = {}
        for root, dirs, files in os.walk(self.local):
            if os.path.basename(root) not in ("cur", "new"):
                continue
            folder = os.path.relpath(os.path.dirname(root), self.local)
            state.setdefault(folder, [])
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                flags = name.split(":2,", 1)[1] if ":2," in name else ""
                state[folder].append((flags, data))
        return {k: sorted(v) for k, v in state.items()}

    def local_files(self, folder):
        out = []
        for sub in ("cur", "new"):
            d = os.path.join(self.local, folder, sub)
            out += [os.path.join(d, n) for n in sorted(os.listdir(d))]
        return out

    def server_state(self):
        """{mailbox: [(uid, flags, bytes)]} for every mailbox."""
        c = self.raw()
        untagged, _ = c.ok('LIST "" "*"')
        names = [mgtest.parse_sexp(l[7:])[2].decode() for l in untagged]
        state = {}
        for name in names:
            untagged, _ = c.ok(f"EXAMINE {mgtest.quote(name)}")
            msgs = []
            if not any(l == b"* 0 EXISTS" for l in untagged):
                untagged, _ = c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[])")
                for line in untagged:
                    items = fetch_items(line)[1]
                    flags = sorted(f for f in items[b"FLAGS"] if f != b"\\Recent")
                    msgs.append((int(items[b"UID"]), flags, items[b"BODY[]"]))
            state[name] = msgs
        c.close()
        return state

    @staticmethod
    def maildir_flags(imap_flags):
        letters = {b"\\Draft": "D", b"\\Flagged": "F", b"\\Answered": "R", b"\\Seen": "S",
                   b"\\Deleted": "T"}
        return "".join(sorted(letters[f] for f in imap_flags if f in letters))

    def assert_same(self):
        """Every server message is in the local Maildir with its flags and
        its content (LF line ends), and nothing else is."""
        server, local = self.server_state(), self.local_state()
        self.assertEqual(set(server), set(local))
        for name, msgs in server.items():
            want = sorted((self.maildir_flags(f), body.replace(b"\r\n", b"\n"))
                          for _, f, body in msgs)
            got = [(flags, data) for flags, data in local[name]]
            self.assertEqual(got, want, name)
        return server, local

    def test_two_way_sync(self):
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"inbox {i}",
                                                        body=f"body {i}\r\n.dot\r\n"))
        c = self.raw()
        c.ok("CREATE Projects/2026")
        c.append("Projects/2026", mgtest.make_message(subject="project"), flags="\\Answered")
        # Names that need quoting and modified UTF-7 ("Grüße & Co").
        c.ok('CREATE "With Space/Gr&APwA3w-e &- Co"')
        c.append("With Space/Gr&APwA3w-e &- Co", mgtest.make_message(subject="odd folder"))
        c.ok("SELECT INBOX")
        c.ok("STORE 2 +FLAGS (\\Flagged)")
        c.close()

        # 1. Everything comes down.
        self.sync()
        server, local = self.assert_same()
        self.assertEqual(len(local["INBOX"]), 3)
        self.assertEqual(len(local["Projects/2026"]), 1)
        self.assertEqual(len(local["With Space/Gr&APwA3w-e &- Co"]), 1)
        for folder in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
            self.assertIn(folder, local)

        # 2. Nothing to do: nothing changes.
        self.sync()
        self.assertEqual(self.server_state(), server)
        self.assertEqual(self.local_state(), local)

        # 3. Local changes go up: \Seen, a deletion, a new message.
        files = self.local_files("INBOX")
        unflagged = [p for p in files if not re.search(r":2,[A-Z]*F", p)]
        seen, gone = unflagged[0], unflagged[1]
        base = os.path.basename(seen).split(":2,")[0]
        os.rename(seen, os.path.join(self.local, "INBOX", "cur", base + ":2,S"))
        os.unlink(gone)
        new_msg = mgtest.make_message(subject="written locally", body="local body\r\n")
        with open(os.path.join(self.local, "Projects/2026", "new", "1700000000.local1.host"),
                  "wb") as f:
            f.write(new_msg.replace(b"\r\n", b"\n"))
        # A folder made locally, with a message in it. (Top level: for
        # "a/b" the server makes the parent "a" a mailbox, as Dovecot does,
        # and offlineimap then finds no Maildir for it.)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.local, "Made Here", sub))
        with open(os.path.join(self.local, "Made Here", "cur", "1700000001.local2.host:2,S"),
                  "wb") as f:
            f.write(b"Subject: in a local folder\n\nhi\n")
        self.sync()
        server, _ = self.assert_same()
        self.assertEqual([(m[1], m[2]) for m in server["Made Here"]],
                         [([b"\\Seen"], b"Subject: in a local folder\r\n\r\nhi\r\n")])
        inbox = server["INBOX"]
        self.assertEqual(len(inbox), 2)
        self.assertEqual(sorted(self.maildir_flags(f) for _, f, _ in inbox), ["F", "S"])
        uploaded = [m for m in server["Projects/2026"] if b"written locally" in m[2]]
        self.assertEqual(len(uploaded), 1)
        # Uploaded as it was written, with CR LF (offlineimap converts).
        self.assertTrue(uploaded[0][2].endswith(b"\r\n\r\nlocal body\r\n"), uploaded[0][2])
        self.assertNotIn(b"\n", uploaded[0][2].replace(b"\r\n", b""))

        # 4. Server changes come down: flags, an expunge, a delivery, a
        # new folder with a message.
        c = self.raw()
        c.ok("SELECT INBOX")
        c.ok("STORE 1 +FLAGS (\\Answered)")
        c.ok("STORE 2 -FLAGS (\\Flagged)")
        c.ok('SELECT "Projects/2026"')
        c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        c.ok("CREATE Later")
        c.append("Later", mgtest.make_message(subject="in a new folder"))
        c.close()
        self.deliver(["alice"], mgtest.make_message(subject="late arrival"))
        self.sync()
        server, local = self.assert_same()
        self.assertEqual(len(local["INBOX"]), 3)
        self.assertEqual(len(local["Projects/2026"]), 1)
        self.assertEqual(len(local["Later"]), 1)

        # 5. Nothing to do again.
        self.sync()
        self.assertEqual(self.server_state(), server)
        self.assertEqual(self.local_state(), local)

    def test_resync_after_restart(self):
        """UIDVALIDITY and UIDs are stable across a restart: nothing is
        fetched again, nothing is duplicated."""
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"m{i}"))
        self.sync()
        local = self.local_state()
        self.server.restart()
        out = self.sync()
        self.assertNotIn("Copy message", out)
        self.assertEqual(self.local_state(), local)
        self.assert_same()


if __name__ == "__main__":
    mgtest.main()
