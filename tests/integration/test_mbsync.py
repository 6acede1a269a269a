#!/usr/bin/python3
"""A real synchronising client: mbsync (isync) against mgimapd over IMAPS.
First run: the local Maildir gets every message of every folder. Local
changes (a flag, a new message, a deletion) reach the server on the next
run; server changes (a flag, an expunge, a delivery) reach the local
side; a run with nothing to do changes nothing on either side."""
import os
import re
import shutil
import subprocess

import mgtest
from mgtest import fetch_items

MBSYNC = shutil.which("mbsync")


class TestMbsync(mgtest.MgTestCase):
    def setUp(self):
        if MBSYNC is None:
            self.skipTest("mbsync is not installed (Debian package isync)")
        super().setUp()
        self.local = os.path.join(self.tmp, "local")
        os.makedirs(self.local)
        self.rc = os.path.join(self.tmp, "mbsyncrc")
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(self.server.password("alice"))
        with open(self.rc, "w") as f:
            f.write(f"""IMAPAccount test
Host localhost
Port {self.server.port}
User {self.server.address("alice")}
PassCmd "cat {pwfile}"
SSLType IMAPS
CertificateFile {self.server.cert}
Timeout 60

IMAPStore remote
Account test

MaildirStore local
Path {self.local}/
Inbox {self.local}/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")

    def mbsync(self):
        r = subprocess.run([MBSYNC, "-c", self.rc, "-a"], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, HOME=self.tmp))
        self.assertEqual(r.returncode, 0, f"mbsync failed:\n{r.stdout}\n{r.stderr}\n"
                                          f"{self.server.log_tail()}")
        # mbsync complains about servers it finds odd ("Warning: ...").
        self.assertNotRegex(r.stdout + r.stderr, r"(?i)warning|error|unexpected", r.stdout + r.stderr)
        return r

    def local_state(self):
        """{folder: sorted [(file name, content)]} of message files."""
        state = {}
        for root, dirs, files in os.walk(self.local):
            sub = os.path.basename(root)
            if sub not in ("cur", "new", "tmp"):
                continue
            folder = os.path.relpath(os.path.dirname(root), self.local)
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    state.setdefault(folder, []).append((f"{sub}/{name}", f.read()))
        return {k: sorted(v) for k, v in state.items()}

    def server_state(self):
        """{mailbox: (UIDVALIDITY, [(uid, flags, bytes)])} for every mailbox."""
        c = self.raw()
        untagged, _ = c.ok('LIST "" "*"')
        names = [mgtest.parse_sexp(l[7:])[2].decode() for l in untagged]
        state = {}
        for name in names:
            untagged, _ = c.ok(f"EXAMINE {mgtest.quote(name)}")
            text = b"\n".join(untagged)
            validity = int(re.search(rb"UIDVALIDITY (\d+)", text).group(1))
            exists = int(re.search(rb"\* (\d+) EXISTS", text).group(1))
            msgs = []
            if exists:
                untagged, _ = c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[])")
                for line in untagged:
                    items = fetch_items(line)[1]
                    flags = sorted(f for f in items[b"FLAGS"] if f != b"\\Recent")
                    msgs.append((int(items[b"UID"]), flags, items[b"BODY[]"]))
            state[name] = (validity, msgs)
        c.close()
        return state

    def test_sync_both_ways(self):
        for i in range(3):
            self.deliver(["alice"], mgtest.make_message(subject=f"inbox {i}", body=f"body {i}\r\n"))
        c = self.raw()
        c.ok("CREATE Projects")
        for i in range(2):
            c.append("Projects", mgtest.make_message(subject=f"project {i}"))
        c.ok("SELECT INBOX")
        c.ok("STORE 2 +FLAGS (\\Flagged)")
        c.close()

        # 1. Everything comes down.
        self.mbsync()
        local = self.local_state()
        self.assertEqual(len(local.get("INBOX", [])), 3, local.keys())
        self.assertEqual(len(local.get("Projects", [])), 2)
        for folder in ("Sent", "Drafts", "Trash", "Junk", "Archive"):
            self.assertTrue(os.path.isdir(os.path.join(self.local, folder, "cur")), folder)
        server = self.server_state()
        # mbsync stores messages with LF line ends, and marks each with an
        # X-TUID header (its own, to find it again).
        local_bodies = sorted(re.sub(rb"(?m)^X-TUID: .*\n", b"", b) for _, b in local["INBOX"])
        self.assertEqual(local_bodies, sorted(m[2].replace(b"\r\n", b"\n")
                                              for m in server["INBOX"][1]))
        flagged = [n for n, _ in local["INBOX"] if re.search(r":2,[A-Z]*F", n)]
        self.assertEqual(len(flagged), 1, local["INBOX"])

        # 2. Local changes go up: \Seen on a message, a new message, a
        # deletion (trashed and expunged).
        inbox_cur = os.path.join(self.local, "INBOX", "cur")
        inbox_new = os.path.join(self.local, "INBOX", "new")
        files = sorted(os.listdir(inbox_cur)) + sorted(os.listdir(inbox_new))
        self.assertEqual(len(files), 3)
        unflagged = [n for n in files if not re.search(r":2,[A-Z]*F", n)]
        target = unflagged[0]
        src_dir = inbox_cur if target in os.listdir(inbox_cur) else inbox_new
        base = target.split(":2,")[0]
        os.rename(os.path.join(src_dir, target), os.path.join(inbox_cur, base + ":2,S"))
        victim = unflagged[1]
        vdir = inbox_cur if victim in os.listdir(inbox_cur) else inbox_new
        vbase = victim.split(":2,")[0]
        os.rename(os.path.join(vdir, victim), os.path.join(inbox_cur, vbase + ":2,T"))
        new_msg = mgtest.make_message(subject="written locally", body="local body\r\n")
        with open(os.path.join(self.local, "Projects", "new", "1700000000.local1.host"), "wb") as f:
            f.write(new_msg.replace(b"\r\n", b"\n"))   # Maildir files use LF
        self.mbsync()
        server = self.server_state()
        inbox = server["INBOX"][1]
        self.assertEqual(len(inbox), 2, inbox)
        seen = [m for m in inbox if b"\\Seen" in m[1]]
        self.assertEqual(len(seen), 1, inbox)
        projects = server["Projects"][1]
        self.assertEqual(len(projects), 3)
        uploaded = [m for m in projects if b"written locally" in m[2]]
        self.assertEqual(len(uploaded), 1)
        self.assertIn(b"local body", uploaded[0][2])

        # 3. Server changes come down: a flag, an expunge, a delivery.
        c = self.raw()
        c.ok("SELECT Projects")
        c.ok("STORE 1 +FLAGS (\\Answered)")
        c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        c.ok("EXPUNGE")
        c.close()
        self.deliver(["alice"], mgtest.make_message(subject="late arrival"))
        self.mbsync()
        local = self.local_state()
        self.assertEqual(len(local["Projects"]), 2)
        self.assertEqual(len([n for n, _ in local["Projects"] if re.search(r":2,[A-Z]*R", n)]), 1)
        self.assertEqual(len(local["INBOX"]), 3)
        self.assertTrue(any(b"late arrival" in b for _, b in local["INBOX"]))

        # 4. Nothing to do: nothing changes, on either side.
        server_before, local_before = self.server_state(), self.local_state()
        self.mbsync()
        self.assertEqual(self.server_state(), server_before)
        self.assertEqual(self.local_state(), local_before)
        # And UIDs on the server are the ones mbsync recorded.
        for folder in ("INBOX", "Projects"):
            with open(os.path.join(self.local, folder, ".mbsyncstate")) as f:
                state = f.read()
            recorded = {int(m.group(1)) for m in re.finditer(r"(?m)^(\d+) \d+ ", state)}
            on_server = {m[0] for m in server_before[folder][1]}
            self.assertEqual(recorded, on_server, (folder, state))

    def test_resync_after_restart_and_rebuild(self):
        """UIDVALIDITY and UIDs are stable across a restart and an index
        rebuild, so mbsync has nothing to fetch again."""
        for i in range(4):
            self.deliver(["alice"], mgtest.make_message(subject=f"m{i}"))
        self.mbsync()
        local_before = self.local_state()
        self.server.restart()
        r = self.mbsync()
        self.assertEqual(self.local_state(), local_before)
        self.server.stop()
        shutil.rmtree(self.server.index_dir)
        self.server.start()
        r = self.mbsync()
        self.assertNotIn("UIDVALIDITY", r.stderr)
        self.assertEqual(self.local_state(), local_before)


if __name__ == "__main__":
    mgtest.main()
