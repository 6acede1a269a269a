"""The Debian package in a clean Debian 12 root (debootstrap, cached):
installed with apt (dependencies from Debian), the daemons started the way
their units start them (user, groups, capabilities, no-new-privileges,
umask, runtime directories, sd_notify; with setpriv instead of systemd)
and as root (as in a container), mail submitted on 465 and 25 and read on
993 from outside the root, no process running as root or holding a
capability, the documented owners and modes, reload and graceful stop,
mgsendmail and mgqueue, the certbot hook, a reinstall that keeps the
configuration, and a purge that leaves nothing behind.

Needs root, debootstrap and the package (`make test-deploy` builds it;
MG_DEB names another): exits 77 (skipped) without them.
"""
import imaplib
import os
import re
import signal
import smtplib
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgdeploy  # noqa: E402
from mgdeploy import log  # noqa: E402

DOMAIN = "example.test"
PASSWORD = "deploy-test-password"
CONF = "/etc/mailgenic/mailgenic.conf"
PROGRAMS = ("mgimapd", "mgsmtpd", "mgadm", "mgqueue", "mgsendmail")
USERS = {"mgimapd": "mgimap", "mgauthd": "mgauth", "mgsmtpd": "mgsmtp"}


def message(subject, to, frm="sender@remote.test"):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@remote.test>\r\n\r\nHello from {subject}.\r\n").encode()


class Package(unittest.TestCase):
    root = None
    notifies = []

    @classmethod
    def setUpClass(cls):
        mgdeploy.require_root_and_tools("ip")
        cls.deb = mgdeploy.require_deb()
        mgdeploy.enter_private_mounts()
        started = time.monotonic()
        cls.root = mgdeploy.Root("package")
        log(f"root ready in {time.monotonic() - started:.1f} s")
        cls.deb_in = cls.root.copy_in(cls.deb, "/tmp/" + os.path.basename(cls.deb))
        t = time.monotonic()
        r = cls.root.apt("install", cls.deb_in)
        log(f"apt-get install ./{os.path.basename(cls.deb)}: {time.monotonic() - t:.1f} s")
        cls.install_output = r.stdout + r.stderr
        # The daemons listen on their real ports (25, 465, 993), in a
        # network namespace of the test's own.
        mgdeploy.enter_private_network()
        cls.units = {name: mgdeploy.Unit(cls.root.file(f"/usr/lib/systemd/system/{name}.service"))
                     for name in ("mgimapd", "mgsmtpd")}
        cls.cafile = cls.root.file("/etc/mailgenic/tls/cert.pem")
        cls.logdir = cls.root.file("/var/log")
        cls.root.chroot("mgadm", "domain", "add", DOMAIN)
        cls.root.chroot("mgadm", "user", "add", f"alice@{DOMAIN}", "--password-stdin",
                        input=PASSWORD + "\n")

    @classmethod
    def tearDownClass(cls):
        if cls.root is not None:
            cls.root.close()

    # ---- helpers ----

    def assert_owner_mode(self, path, user, group, mode):
        st = self.root.stat(path)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (self.root.uid(user), self.root.gid(group), mode),
                         f"{path}: expected {user}:{group} {mode:04o}, got uid {st.st_uid} "
                         f"gid {st.st_gid} {stat.S_IMODE(st.st_mode):04o}")

    def assert_tree_owned(self, path, user):
        """Every file under path belongs to user, and none is open to others."""
        uid = self.root.uid(user)
        host = self.root.file(path)
        count = 0
        for dirpath, dirnames, filenames in os.walk(host):
            for name in [""] + dirnames + filenames:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                rel = "/" + os.path.relpath(p, self.root.path)
                self.assertEqual(st.st_uid, uid, f"{rel} belongs to uid {st.st_uid}, not {user}")
                if not stat.S_ISLNK(st.st_mode) and not stat.S_ISSOCK(st.st_mode):
                    self.assertEqual(st.st_mode & 0o007, 0,
                                     f"{rel} is open to others: {stat.S_IMODE(st.st_mode):04o}")
                count += 1
        return count

    def start(self, as_root):
        procs = {}
        self.notifies = []
        for name in ("mgimapd", "mgsmtpd"):
            proc, notify = mgdeploy.start_like_unit(
                self.root, self.units[name], os.path.join(self.logdir, f"{name}.log"), as_root=as_root)
            procs[name] = (proc, notify)
            self.notifies.append(notify)
            if not notify.wait_for("READY=1", timeout=60):
                self.fail(f"{name} did not report READY=1:\n{self.daemon_log(name)}")
        return procs

    def stop(self, procs):
        """SIGTERM, as systemctl stop: STOPPING=1, then a clean exit."""
        for name, (proc, notify) in procs.items():
            proc.send_signal(signal.SIGTERM)
        for name, (proc, notify) in procs.items():
            try:
                code = proc.wait(timeout=30)
            except Exception:
                self.fail(f"{name} did not stop within 30 s of SIGTERM")
            self.assertEqual(code, 0, f"{name} exited {code}:\n{self.daemon_log(name)}")
            self.assertTrue(notify.wait_for("STOPPING=1", timeout=1), f"{name}: no STOPPING=1")
            notify.close()
        deadline = time.monotonic() + 15
        while self.root.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [mgdeploy.proc_name(p) for p in self.root.processes()]
        self.assertEqual(left, [], "processes left after the daemons stopped\n"
                         f"mgimapd: {self.daemon_log('mgimapd')}")

    def daemon_log(self, name):
        try:
            with open(os.path.join(self.logdir, f"{name}.log"), errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return "(no log)"

    def check_processes(self, as_root):
        pids = self.root.processes()
        names = sorted(mgdeploy.proc_name(p) for p in pids)
        # mgauthd is a supervisor and its serving child.
        self.assertEqual(names, ["mgauthd", "mgauthd", "mgimapd", "mgsmtpd"], names)
        for pid in pids:
            name = mgdeploy.proc_name(pid)
            st = mgdeploy.proc_status(pid)
            uid = self.root.uid(USERS[name])
            self.assertEqual(st["Uid"].split(), [str(uid)] * 4, f"{name} ({pid}) Uid: {st['Uid']}")
            self.assertNotIn("0", st["Gid"].split(), f"{name} Gid: {st['Gid']}")
            for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, f"{name} {cap}: {st[cap]}")
            self.assertEqual(st["NoNewPrivs"], "1", f"{name} NoNewPrivs")
            # MemoryDenyWriteExecute= would kill a process that maps
            # memory writable and executable: ours never do.
            with open(f"/proc/{pid}/maps") as f:
                wx = [line for line in f if line.split()[1].startswith("rwx")]
            self.assertEqual(wx, [], f"{name} has writable+executable mappings")
            if name == "mgimapd":
                groups = set(int(g) for g in st["Groups"].split())
                self.assertTrue({self.root.gid("mgsmtp"), self.root.gid("mailgenic-tls")} <= groups,
                                f"mgimapd groups {groups}")
        # Access is the group and the mode; the owner is whoever bound the
        # socket (root, in a direct start, before switching users), except
        # where a daemon hands it to its user (auth.sock as root, the
        # control socket for mgqueue).
        bound_by = "root" if as_root else None
        self.assert_owner_mode("/run/mailgenic/mda/lmtp.sock", bound_by or "mgimap", "mgsmtp", 0o660)
        self.assert_owner_mode("/run/mailgenic/mda/auth.sock", "mgauth" if as_root else "mgimap",
                               "mgsmtp", 0o660)
        self.assert_owner_mode("/run/mailgenic/mta/submit.sock", bound_by or "mgsmtp",
                               "root" if as_root else "mgsmtp", 0o666)
        self.assert_owner_mode("/run/mailgenic/mta/mgsmtpd.ctl", "mgsmtp", "mgsmtp", 0o600)
        self.assert_owner_mode("/run/mailgenic/mda", "mgimap", "mgimap", 0o755)
        self.assert_owner_mode("/run/mailgenic/mta", "mgsmtp", "mgsmtp", 0o755)

    def submit(self, subject, port=465):
        ctx = mgdeploy.tls_context(self.cafile)
        to = f"alice@{DOMAIN}"
        if port == 465:
            with smtplib.SMTP_SSL("127.0.0.1", 465, context=ctx, timeout=30) as s:
                s.login(to, PASSWORD)
                s.sendmail(to, [to], message(subject, to, frm=to))
        else:
            with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
                s.starttls(context=ctx)
                s.sendmail("sender@remote.test", [to], message(subject, to))

    def wait_in_inbox(self, subject, timeout=30):
        ctx = mgdeploy.tls_context(self.cafile)
        deadline = time.monotonic() + timeout
        with imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context=ctx, timeout=30) as m:
            m.login(f"alice@{DOMAIN}", PASSWORD)
            while True:
                m.select("INBOX")
                typ, data = m.search(None, "SUBJECT", subject)
                if data[0].split():
                    typ, body = m.fetch(data[0].split()[0], "(BODY.PEEK[])")
                    return body[0][1]
                if time.monotonic() > deadline:
                    self.fail(f"'{subject}' did not arrive in INBOX within {timeout} s\n"
                              f"mgsmtpd: {self.daemon_log('mgsmtpd')}\nmgimapd: {self.daemon_log('mgimapd')}")
                time.sleep(0.3)

    # ---- the tests, in order ----

    def test_01_layout(self):
        """What the package installed and what postinst made."""
        for prog in PROGRAMS:
            self.assertTrue(os.access(self.root.file(f"/usr/sbin/{prog}"), os.X_OK), prog)
            self.root.chroot(f"/usr/sbin/{prog}", "--help")
            page = "mgsendmail.8" if prog == "mgsendmail" else f"{prog}.8"
            self.assertTrue(os.path.exists(self.root.file(f"/usr/share/man/man8/{page}.gz")), page)
        self.assertTrue(os.access(self.root.file("/usr/lib/mailgenic/mgauthd"), os.X_OK))
        self.assertFalse(os.path.exists(self.root.file("/usr/sbin/mgauthd")))
        self.assertTrue(os.path.exists(self.root.file("/usr/share/man/man5/mailgenic.conf.5.gz")))
        self.root.chroot("mgimapd", "--check-config")
        self.root.chroot("mgsmtpd", "--check-config")
        # Users: system users without a login shell; groups as documented.
        for user in ("mgimap", "mgauth", "mgsmtp"):
            entry = [line for line in self.root.read("/etc/passwd").splitlines()
                     if line.startswith(user + ":")]
            self.assertEqual(len(entry), 1, user)
            fields = entry[0].split(":")
            self.assertLess(int(fields[2]), 1000, f"{user} is not a system user")
            self.assertEqual(fields[6], "/usr/sbin/nologin", user)
            self.assertEqual(int(fields[3]), self.root.gid(user), f"{user}'s primary group")
        self.assertEqual(sorted(self.root.group_members("mgsmtp")), ["mgimap"])
        self.assertEqual(sorted(self.root.group_members("mailgenic-tls")), ["mgimap", "mgsmtp"])
        self.assertEqual(self.root.group_members("mgauth"), [])
        # State and configuration.
        self.assert_owner_mode("/var/lib/mailgenic", "root", "root", 0o755)
        self.assert_owner_mode("/var/lib/mailgenic/userdb", "mgauth", "mgauth", 0o700)
        self.assert_owner_mode("/var/lib/mailgenic/mail", "mgimap", "mgimap", 0o700)
        self.assert_owner_mode("/var/lib/mailgenic/index", "mgimap", "mgimap", 0o700)
        self.assert_owner_mode("/var/spool/mailgenic", "mgsmtp", "mgsmtp", 0o700)
        self.assert_owner_mode("/etc/mailgenic/mailgenic.conf", "root", "root", 0o644)
        self.assert_owner_mode("/etc/mailgenic/tls", "root", "mailgenic-tls", 0o750)
        self.assert_owner_mode("/etc/mailgenic/tls/key.pem", "root", "mailgenic-tls", 0o640)
        self.assert_owner_mode("/etc/mailgenic/tls/cert.pem", "root", "mailgenic-tls", 0o644)
        conffiles = self.root.chroot("dpkg-query", "-W", "-f=${Conffiles}", "mailgenic").stdout
        self.assertIn("/etc/mailgenic/mailgenic.conf", conffiles)
        # sendmail is ours; the units are enabled (started only under systemd).
        self.assertEqual(self.root.chroot("readlink", "-f", "/usr/sbin/sendmail").stdout.strip(),
                         "/usr/sbin/mgsendmail")
        for unit in ("mgimapd.service", "mgsmtpd.service"):
            link = self.root.file(f"/etc/systemd/system/multi-user.target.wants/{unit}")
            self.assertTrue(os.path.islink(link), f"{unit} is not enabled")
        self.root.chroot("systemd-analyze", "verify", "--man=no",
                         "/usr/lib/systemd/system/mgimapd.service",
                         "/usr/lib/systemd/system/mgsmtpd.service")
        # The user directory made by `mgadm` as root belongs to mgauth.
        self.assert_tree_owned("/var/lib/mailgenic/userdb", "mgauth")

    def test_02_reinstall_keeps_configuration(self):
        """An upgrade (here: a reinstall) keeps an edited conffile and the
        certificate, and postinst run again changes nothing."""
        conf = self.root.file(CONF)
        with open(conf) as f:
            original = f.read()
        edited = original.replace("log_level = info", "log_level = notice")
        self.assertNotEqual(edited, original)
        with open(conf, "w") as f:
            f.write(edited)
        key_before = self.root.read("/etc/mailgenic/tls/key.pem")
        passwd_before = self.root.read("/etc/passwd")
        self.root.apt("install", "--reinstall", self.deb_in)
        self.assertEqual(self.root.read(CONF), edited)
        self.assertEqual(self.root.read("/etc/mailgenic/tls/key.pem"), key_before)
        self.assertEqual(self.root.read("/etc/passwd"), passwd_before)
        with open(conf, "w") as f:
            f.write(original)

    def test_03_start_as_units_do(self):
        """setpriv with the units' User=, SupplementaryGroups=, ambient and
        bounding capabilities and NoNewPrivileges=: what systemd does."""
        try:
            procs = self.start(as_root=False)
            self.check_processes(as_root=False)
            self.submit("units-465")
            body = self.wait_in_inbox("units-465")
            self.assertIn(b"Hello from units-465.", body)
            self.submit("units-25", port=25)
            self.wait_in_inbox("units-25")
            # Reload (systemctl reload: SIGHUP) reads the key again, as
            # mgimap and mgsmtp, through the group mailgenic-tls.
            for name, (proc, notify) in procs.items():
                notify.messages.clear()
                proc.send_signal(signal.SIGHUP)
                self.assertTrue(notify.wait_for("RELOADING=1", 10), f"{name}: no RELOADING=1")
                self.assertTrue(notify.wait_for("READY=1", 10), f"{name}: no READY=1 after reload")
            time.sleep(0.5)
            for name in procs:
                self.assertIn("certificates reloaded", self.daemon_log(name), name)
            self.submit("units-after-reload")
            self.wait_in_inbox("units-after-reload")
            files = self.assert_tree_owned("/var/lib/mailgenic/mail", "mgimap")
            self.assertGreater(files, 5)
            self.assert_tree_owned("/var/lib/mailgenic/index", "mgimap")
            self.assert_tree_owned("/var/lib/mailgenic/userdb", "mgauth")
            self.assert_tree_owned("/var/spool/mailgenic", "mgsmtp")
            self.stop(procs)
        finally:
            self.root.kill_all()
            for n in self.notifies:
                n.close()

    def test_04_start_as_root(self):
        """As root without systemd (a container): the daemons bind, start
        mgauthd and switch users themselves."""
        try:
            procs = self.start(as_root=True)
            self.check_processes(as_root=True)
            self.submit("root-465")
            self.wait_in_inbox("root-465")
            # mgsendmail (/usr/sbin/sendmail) works for any local user.
            self.root.chroot("/usr/sbin/sendmail", "-t", user="nobody:nogroup",
                             input=message("sendmail-nobody", f"alice@{DOMAIN}",
                                           frm="nobody").decode())
            self.wait_in_inbox("sendmail-nobody")
            # mgqueue: root and mgsmtp, nobody else.
            self.root.chroot("mgqueue", "list")
            self.root.chroot("mgqueue", "list", user="mgsmtp:mgsmtp")
            r = self.root.chroot("mgqueue", "list", user="nobody:nogroup", check=False)
            self.assertNotEqual(r.returncode, 0, "mgqueue worked for nobody")
            self.stop(procs)
        finally:
            self.root.kill_all()
            for n in self.notifies:
                n.close()
        self.assert_tree_owned("/var/lib/mailgenic/mail", "mgimap")
        self.assert_tree_owned("/var/spool/mailgenic", "mgsmtp")

    def docs_block(self, name):
        """The shell block of docs/operations.md marked '<!-- tested: name'."""
        with open(os.path.join(mgdeploy.SOURCE_DIR, "docs", "operations.md")) as f:
            text = f.read()
        marker = text.index(f"<!-- tested: {name}")
        start = text.index("```sh\n", marker) + len("```sh\n")
        return text[start:text.index("```", start)]

    def inbox_uids(self):
        ctx = mgdeploy.tls_context(self.cafile)
        with imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context=ctx, timeout=30) as m:
            m.login(f"alice@{DOMAIN}", PASSWORD)
            m.select("INBOX", readonly=True)
            out = {}
            typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            for i, item in enumerate(data):
                if isinstance(item, tuple):
                    # UID comes before or after the literal.
                    after = data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
                    uid = re.search(rb"UID (\d+)", item[0] + after).group(1).decode()
                    subject = item[1].decode().split(":", 1)[1].strip()
                    out[subject] = uid
            return out

    def test_05_backup_and_restore(self):
        """The backup and restore blocks of docs/operations.md, as they
        are: a hot backup while the daemons serve, more mail, a purge, a new
        installation, the restore: the old user and password work and the
        mail from before the backup is there, with its UIDs."""
        try:
            procs = self.start(as_root=False)
            self.submit("before-backup")
            self.wait_in_inbox("before-backup")
            uids = self.inbox_uids()
            started = time.monotonic()
            self.root.chroot("/bin/sh", "-c", self.docs_block("backup"))
            log(f"backup: {time.monotonic() - started:.1f} s")
            self.submit("after-backup")
            self.wait_in_inbox("after-backup")
            self.stop(procs)
        finally:
            self.root.kill_all()
        # Everything is lost, and the package comes back.
        self.root.apt("purge", "mailgenic")
        self.assertFalse(os.path.exists(self.root.file("/var/lib/mailgenic")))
        self.root.apt("install", self.deb_in)
        # No systemd in this root: a stand-in systemctl notes what the
        # block asks, and the test starts the daemons as the units do.
        stub = self.root.file("/usr/local/sbin/systemctl")
        with open(stub, "w") as f:
            f.write('#!/bin/sh\necho "$*" >> /tmp/systemctl.calls\n')
        os.chmod(stub, 0o755)
        started = time.monotonic()
        try:
            self.root.chroot("/bin/sh", "-c", self.docs_block("restore"))
        finally:
            os.unlink(stub)
        log(f"restore: {time.monotonic() - started:.1f} s")
        self.assertEqual(self.root.read("/tmp/systemctl.calls").splitlines(),
                         ["stop mgsmtpd mgimapd", "start mgimapd mgsmtpd"])
        try:
            procs = self.start(as_root=False)
            restored = self.inbox_uids()
            self.assertEqual(restored, uids, "the mailbox after the restore")
            self.assertNotIn("after-backup", restored)
            self.submit("after-restore")
            self.wait_in_inbox("after-restore")
            self.root.chroot("mgqueue", "list")
            self.stop(procs)
        finally:
            self.root.kill_all()
        for path, user in (("/var/lib/mailgenic/userdb", "mgauth"), ("/var/lib/mailgenic/index", "mgimap"),
                           ("/var/lib/mailgenic/mail", "mgimap"), ("/var/spool/mailgenic", "mgsmtp")):
            self.assert_owner_mode(path, user, user, 0o700)
            self.assert_tree_owned(path, user)

    def test_06_certbot_hook(self):
        """The example deploy hook opens one lineage's key to mailgenic-tls."""
        le = "/etc/letsencrypt"
        name = "smtp.example.test"
        for d in (f"{le}/live/{name}", f"{le}/archive/{name}", f"{le}/archive/other.test"):
            os.makedirs(self.root.file(d), mode=0o700)
        for d in (f"{le}/live", f"{le}/archive"):
            os.chmod(self.root.file(d), 0o700)
        for f in (f"{le}/archive/{name}/privkey1.pem", f"{le}/archive/other.test/privkey1.pem"):
            with open(self.root.file(f), "w") as out:
                out.write("key\n")
            os.chmod(self.root.file(f), 0o600)
        os.symlink(f"../../archive/{name}/privkey1.pem", self.root.file(f"{le}/live/{name}/privkey.pem"))
        self.root.chroot("/bin/sh", "/usr/share/doc/mailgenic/examples/certbot-deploy-hook",
                         env={"RENEWED_LINEAGE": f"{le}/live/{name}"})
        for d in (f"{le}/live", f"{le}/archive", f"{le}/live/{name}", f"{le}/archive/{name}"):
            self.assert_owner_mode(d, "root", "mailgenic-tls", 0o710)
        self.assert_owner_mode(f"{le}/archive/{name}/privkey1.pem", "root", "mailgenic-tls", 0o640)
        self.assert_owner_mode(f"{le}/archive/other.test/privkey1.pem", "root", "root", 0o600)
        self.assert_owner_mode(f"{le}/archive/other.test", "root", "root", 0o700)
        # mgsmtp (in mailgenic-tls) reads the key through the live link.
        self.root.chroot("cat", f"{le}/live/{name}/privkey.pem", user="mgsmtp:mgsmtp")
        r = self.root.chroot("cat", f"{le}/live/{name}/privkey.pem", user="nobody:nogroup", check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_07_purge(self):
        """Purge: users, groups, state, configuration and the sendmail
        link are gone."""
        self.root.apt("purge", "mailgenic")
        for user in ("mgimap", "mgauth", "mgsmtp"):
            self.assertIsNone(self.root.uid(user), user)
        for group in ("mgimap", "mgauth", "mgsmtp", "mailgenic-tls"):
            self.assertIsNone(self.root.gid(group), group)
        for path in ("/var/lib/mailgenic", "/var/spool/mailgenic", "/etc/mailgenic",
                     "/usr/sbin/sendmail", "/usr/sbin/mgimapd", "/usr/lib/mailgenic",
                     "/usr/lib/systemd/system/mgimapd.service",
                     "/etc/systemd/system/multi-user.target.wants/mgimapd.service",
                     "/etc/systemd/system/multi-user.target.wants/mgsmtpd.service"):
            self.assertFalse(os.path.lexists(self.root.file(path)), f"{path} is still there")
        status = self.root.chroot("dpkg-query", "-W", "-f=${Status}", "mailgenic", check=False)
        self.assertNotIn("installed", status.stdout.replace("not-installed", ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
