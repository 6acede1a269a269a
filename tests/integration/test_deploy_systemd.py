"""The units under a real systemd: the package installed in a clean Debian
12 root (debootstrap, cached), booted with systemd-nspawn on a private
network. Checks what only systemd can show: both services started at boot
(Type=notify: active only once ready), the sandbox lets them work
(ProtectSystem=strict, SystemCallFilter=, MemoryDenyWriteExecute=, ...),
no capability left and a seccomp filter on every process, mail from 465
to 993, `systemctl reload` (same process, new certificates), mail waiting
in the queue while the MDA is unreachable and delivered by `mgqueue
flush`, mgsmtpd running without mgimapd, a clean `systemctl stop`, and
systemd's own exposure score.

Needs root, debootstrap, systemd-nspawn (systemd-container) and the
package (`make test-deploy` builds it): exits 77 (skipped) without them or
when systemd cannot boot here (no cgroup access, say).
"""
import imaplib
import os
import signal
import smtplib
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgdeploy  # noqa: E402
from mgdeploy import log  # noqa: E402

DOMAIN = "example.test"
PASSWORD = "systemd-test-password"
BOOT_TIMEOUT = 120
EXPOSURE_MAX = 3.0  # systemd-analyze security: "OK" is below 5; ours are about 2


def message(subject, to, frm="sender@remote.test"):
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@remote.test>\r\n\r\nHello from {subject}.\r\n").encode()


class Systemd(unittest.TestCase):
    root = None
    nspawn = None

    @classmethod
    def setUpClass(cls):
        mgdeploy.require_root_and_tools("systemd-nspawn", "nsenter")
        cls.deb = mgdeploy.require_deb()
        mgdeploy.enter_private_mounts()
        cls.root = mgdeploy.Root("systemd")
        deb_in = cls.root.copy_in(cls.deb, "/tmp/" + os.path.basename(cls.deb))
        cls.root.apt("install", deb_in)
        cls.root.chroot("mgadm", "domain", "add", DOMAIN)
        cls.root.chroot("mgadm", "user", "add", f"alice@{DOMAIN}", "--password-stdin",
                        input=PASSWORD + "\n")
        cls.cafile = cls.root.file("/etc/mailgenic/tls/cert.pem")
        cls.root.unmount_api()
        cls.boot()

    @classmethod
    def boot(cls):
        name = f"mgdeploy{os.getpid()}"
        cls.console = os.path.join(cls.root.tmp, "console.log")
        with open(cls.console, "wb") as out:
            cls.nspawn = subprocess.Popen(
                ["systemd-nspawn", "-D", cls.root.path, "-M", name, "-b", "--register=no",
                 "--keep-unit", "--private-network", "--console=pipe", "--quiet"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        cls.propagate = f"/run/systemd/nspawn/propagate/{name}"
        # The container's init is systemd-nspawn's child.
        deadline = time.monotonic() + 30
        cls.leader = None
        while cls.leader is None and time.monotonic() < deadline:
            if cls.nspawn.poll() is not None:
                break
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        st = mgdeploy.proc_status(int(entry))
                    except OSError:
                        continue
                    if st.get("PPid") == str(cls.nspawn.pid) and st.get("Name") == "systemd":
                        cls.leader = int(entry)
            time.sleep(0.1)
        if cls.leader is None:
            mgdeploy.skip(f"systemd-nspawn did not start a container here:\n{cls.console_text()}")
        # Until systemd listens, systemctl cannot connect.
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            r = cls.inside("systemctl", "is-system-running", "--wait", check=False, timeout=BOOT_TIMEOUT)
            state = r.stdout.strip()
            if state or time.monotonic() > deadline or cls.nspawn.poll() is not None:
                break
            time.sleep(0.2)
        if state not in ("running", "degraded"):
            mgdeploy.skip(f"systemd did not boot in the container ({state!r}, {r.stderr.strip()}):\n"
                          f"{cls.console_text()}")
        if state == "degraded":
            failed = cls.inside("systemctl", "--failed", "--no-legend", check=False).stdout
            log(f"booted degraded (units outside Mailgenic failed):\n{failed}")
        # Clients run here, in the container's network.
        mgdeploy.enter_network_of(cls.leader)

    @classmethod
    def console_text(cls):
        try:
            with open(cls.console, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    @classmethod
    def inside(cls, *cmd, check=True, timeout=120, input=None):
        return mgdeploy.run(["nsenter", "-t", str(cls.leader), "-m", "-u", "-i", "-n", "-p", "--",
                             "env", "-i"] + [f"{k}={v}" for k, v in mgdeploy.CHROOT_ENV.items()] +
                            list(cmd), check=check, timeout=timeout, input=input)

    @classmethod
    def tearDownClass(cls):
        if cls.nspawn is not None and cls.nspawn.poll() is None:
            # SIGTERM: systemd-nspawn asks the container's systemd to halt.
            cls.nspawn.send_signal(signal.SIGTERM)
            try:
                cls.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                cls.nspawn.kill()
                cls.nspawn.wait()
        if cls.root is not None:
            cls.root.close()
        if getattr(cls, "propagate", None):
            mgdeploy.remove_dir(cls.propagate)

    # ---- helpers ----

    def journal(self, unit):
        return self.inside("journalctl", "--no-pager", "-o", "cat", "-u", unit, check=False).stdout

    def show(self, unit, prop):
        return self.inside("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def assert_active(self, *units):
        for unit in units:
            state = self.inside("systemctl", "is-active", unit, check=False).stdout.strip()
            if state != "active":
                status = self.inside("systemctl", "status", "--no-pager", "-l", unit, check=False).stdout
                self.fail(f"{unit} is {state}:\n{status}\n{self.journal(unit)[-4000:]}")

    def status_of(self, pid):
        text = self.inside("cat", f"/proc/{pid}/status").stdout
        return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}

    def ctx(self):
        return mgdeploy.tls_context(self.cafile)

    def submit(self, subject):
        to = f"alice@{DOMAIN}"
        with smtplib.SMTP_SSL("127.0.0.1", 465, context=self.ctx(), timeout=30) as s:
            s.login(to, PASSWORD)
            s.sendmail(to, [to], message(subject, to, frm=to))

    def wait_in_inbox(self, subject, timeout=30):
        deadline = time.monotonic() + timeout
        with imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context=self.ctx(), timeout=30) as m:
            m.login(f"alice@{DOMAIN}", PASSWORD)
            while True:
                m.select("INBOX")
                typ, data = m.search(None, "SUBJECT", subject)
                if data[0].split():
                    return
                if time.monotonic() > deadline:
                    self.fail(f"'{subject}' did not arrive within {timeout} s\n"
                              f"{self.journal('mgsmtpd.service')[-3000:]}\n"
                              f"{self.journal('mgimapd.service')[-3000:]}")
                time.sleep(0.3)

    # ---- the tests, in order ----

    def test_01_started_at_boot(self):
        self.assert_active("mgimapd.service", "mgsmtpd.service")
        for unit in ("mgimapd.service", "mgsmtpd.service"):
            self.assertEqual(self.show(unit, "Type"), "notify")
            self.assertEqual(self.show(unit, "NRestarts"), "0", self.journal(unit))

    def test_02_processes(self):
        """Users, no capability left, no-new-privileges, a seccomp filter."""
        expect = {"mgimapd": ("mgimap", 0x4c0), "mgauthd": ("mgauth", 0x4c0), "mgsmtpd": ("mgsmtp", 0x400)}
        ps = self.inside("ps", "-eo", "pid=,comm=").stdout.split("\n")
        seen = []
        for line in ps:
            if not line.strip():
                continue
            pid, comm = line.split(None, 1)
            if comm not in expect:
                continue
            seen.append(comm)
            st = self.status_of(pid)
            user, bounding = expect[comm]
            uid = str(self.root.uid(user))
            self.assertEqual(st["Uid"].split(), [uid] * 4, f"{comm} {pid}: Uid {st['Uid']}")
            for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, f"{comm} {cap} {st[cap]}")
            # The bounding set is the unit's CapabilityBoundingSet=.
            self.assertEqual(int(st["CapBnd"], 16), bounding, f"{comm} CapBnd {st['CapBnd']}")
            self.assertEqual(st["NoNewPrivs"], "1", comm)
            self.assertEqual(st["Seccomp"], "2", f"{comm}: no seccomp filter")
        self.assertEqual(sorted(seen), ["mgauthd", "mgauthd", "mgimapd", "mgsmtpd"], ps)
        main = self.show("mgimapd.service", "MainPID")
        self.assertEqual(self.status_of(main)["Name"], "mgimapd")

    def test_03_mail_flows(self):
        self.submit("systemd-465")
        self.wait_in_inbox("systemd-465")

    def test_04_reload(self):
        """systemctl reload: the same processes load the certificates again."""
        before = {u: self.show(u, "MainPID") for u in ("mgimapd.service", "mgsmtpd.service")}
        self.inside("systemctl", "reload", "mgimapd.service", "mgsmtpd.service")
        self.assert_active("mgimapd.service", "mgsmtpd.service")
        for unit, pid in before.items():
            self.assertEqual(self.show(unit, "MainPID"), pid, f"{unit} was restarted, not reloaded")
            self.assertIn("certificates reloaded", self.journal(unit), unit)
        self.submit("systemd-after-reload")
        self.wait_in_inbox("systemd-after-reload")

    def test_05_queue_waits_for_the_mda(self):
        """Mail the MDA cannot take now waits in the queue; mgqueue shows
        it with the reason, and flush delivers it."""
        # The mailbox cannot take mail for a while: mgimapd answers 4xx
        # over LMTP (a full disk would do the same).
        tmp = f"/var/lib/mailgenic/mail/{DOMAIN}/alice/tmp"
        if self.inside("test", "-d", tmp, check=False).returncode != 0:
            self.submit("systemd-first")  # the Maildir is made by the first delivery
            self.wait_in_inbox("systemd-first")
        self.inside("chmod", "0500", tmp)
        try:
            self.submit("systemd-queued")
            deadline = time.monotonic() + 30
            while True:
                listing = self.inside("mgqueue", "list").stdout
                if "alice@" in listing and "(" in listing:  # with its last error
                    break
                if time.monotonic() > deadline:
                    self.fail(f"the message did not wait in the queue:\n{listing}")
                time.sleep(0.3)
        finally:
            self.inside("chmod", "0700", tmp)
        self.inside("mgqueue", "flush")
        self.wait_in_inbox("systemd-queued")
        deadline = time.monotonic() + 10
        while "Mail queue is empty" not in self.inside("mgqueue", "list").stdout:
            self.assertLess(time.monotonic(), deadline, "the queue did not empty")
            time.sleep(0.2)

    def test_06_mgsmtpd_without_mgimapd(self):
        """No hard dependency: mgsmtpd keeps running, and starts, without
        mgimapd (mail for local users is deferred with 451 meanwhile)."""
        self.inside("systemctl", "stop", "mgimapd.service")
        try:
            self.assert_active("mgsmtpd.service")
            self.inside("systemctl", "restart", "mgsmtpd.service")
            self.assert_active("mgsmtpd.service")
            with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
                s.starttls(context=self.ctx())
                s.ehlo("client.remote.test")
                s.mail("sender@remote.test")
                code, _ = s.rcpt(f"alice@{DOMAIN}")
                self.assertEqual(code, 451)
        finally:
            self.inside("systemctl", "start", "mgimapd.service")
        self.assert_active("mgimapd.service", "mgsmtpd.service")
        self.submit("systemd-after-restarts")
        self.wait_in_inbox("systemd-after-restarts")

    def test_07_sandbox_and_logs(self):
        """Nothing the sandbox refused; systemd's exposure score."""
        for unit in ("mgimapd.service", "mgsmtpd.service"):
            # test_05's refusal is on purpose.
            text = "\n".join(line for line in self.journal(unit).splitlines()
                             if "cannot write message: Permission denied" not in line)
            for bad in ("Operation not permitted", "Permission denied", "fatal", "SIGSYS",
                        "Read-only file system", "code=killed"):
                self.assertNotIn(bad, text, f"{unit} journal:\n{text[-4000:]}")
            out = self.inside("systemd-analyze", "security", "--no-pager", unit, check=False).stdout
            line = [x for x in out.splitlines() if "Overall exposure level" in x]
            self.assertTrue(line, out)
            score = float(line[0].split(":")[1].split()[0])
            log(f"{unit}: systemd-analyze security exposure {score}")
            self.assertLessEqual(score, EXPOSURE_MAX, out)

    def test_08_stop(self):
        """systemctl stop: graceful, quick, nothing left behind."""
        started = time.monotonic()
        self.inside("systemctl", "stop", "mgsmtpd.service", "mgimapd.service")
        took = time.monotonic() - started
        self.assertLess(took, 20, f"stopping took {took:.1f} s")
        for unit in ("mgimapd.service", "mgsmtpd.service"):
            self.assertEqual(self.inside("systemctl", "is-active", unit, check=False).stdout.strip(),
                             "inactive")
            self.assertEqual(self.show(unit, "Result"), "success", self.journal(unit)[-3000:])
        ps = self.inside("ps", "-eo", "comm=").stdout.split()
        self.assertFalse([p for p in ps if p.startswith("mg")], ps)


if __name__ == "__main__":
    unittest.main(verbosity=2)
