"""Shared harness for the deployment tests (tests/integration/test_deploy_*).

A `Root` is a clean Debian 12 system in a temporary directory: an overlay
on a debootstrap root cached in .cache/debootstrap-bookworm/ (git-ignored;
made on first use, from deb.debian.org), with /proc, /sys, /dev and a
fresh /run mounted, the host's resolv.conf, and apt's download cache
shared between runs (so that later runs need no network). Everything is
mounted in a private mount namespace of the test process, so nothing is
left mounted when the test ends, however it ends.

`Unit` reads a systemd unit file; `start_like_unit()` starts its
ExecStart inside a Root the way systemd would (user, groups, ambient and
bounding capabilities, no-new-privileges, umask, runtime directories,
NOTIFY_SOCKET), with setpriv(1) instead of systemd.

Skips (exit 77) when the environment cannot do it: not root, no
debootstrap, no namespaces, no mirror.
"""
import ctypes
import fcntl
import glob
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = os.environ.get("MG_TEST_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN_DIR = os.environ.get("MG_TEST_BIN_DIR", os.path.join(os.getcwd(), "bin"))
DEPLOY_DIR = os.path.join(SOURCE_DIR, "deploy")
CACHE_DIR = os.environ.get("MG_DEPLOY_CACHE",
                           os.path.join(SOURCE_DIR, ".cache", "debootstrap-bookworm"))
def _host_mirrors():
    """The Debian mirrors this host's apt uses (a CI machine may reach only
    its own mirror or proxy): (main, security), deb.debian.org where the
    sources do not say."""
    main, security = "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
    uris = []
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            with open(path) as f:
                for line in f:
                    words = line.split()
                    if words[:1] == ["URIs:"]:
                        uris += words[1:]
                    elif words[:1] == ["deb"]:
                        uris += [w for w in words[1:] if "://" in w][:1]
        except OSError:
            continue
    for uri in uris:
        uri = uri.rstrip("/")
        if uri.endswith("-security"):
            security = uri
        elif uri.startswith(("http://", "https://")) and main.startswith("http://deb.debian.org"):
            main = uri
    return main, security


def _proxy_env():
    """The environment with apt's HTTP proxy (Acquire::http::Proxy), if
    the host has one, for debootstrap, which reads only http_proxy."""
    env = dict(os.environ)
    try:
        r = subprocess.run(["apt-config", "shell", "PROXY", "Acquire::http::Proxy"],
                           capture_output=True, text=True, timeout=30)
        proxy = r.stdout.strip().partition("=")[2].strip("'\"")
    except (OSError, subprocess.SubprocessError):
        proxy = ""
    if proxy and "http_proxy" not in env:
        env["http_proxy"] = proxy
    return env


MIRROR = os.environ.get("MG_DEBIAN_MIRROR", _host_mirrors()[0])
SECURITY_MIRROR = os.environ.get("MG_DEBIAN_SECURITY_MIRROR", _host_mirrors()[1])
SUITE = "bookworm"
# What a Debian 12 server has beyond minbase: systemd (units, systemctl,
# systemd-analyze), and what the tests use inside.
BASE_PACKAGES = "systemd,systemd-sysv,dbus,procps,iproute2,ca-certificates"
CACHE_VERSION = "1"

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000

CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "DEBIAN_FRONTEND": "noninteractive",
}


def skip(reason):
    print(f"SKIP: {reason}", file=sys.stderr)
    raise SystemExit(77)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, check=True, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run(cmd, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}\n"
                             f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r


def _unshare(flags):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        return ctypes.get_errno()
    return 0


def require_root_and_tools(*tools):
    if os.geteuid() != 0:
        skip("needs root (debootstrap, chroot, mounts)")
    for tool in ("debootstrap", "chroot", "mount", "umount", "setpriv") + tools:
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed (deploy/install-deps.sh installs it)")


def enter_private_mounts():
    """Mounts made from now on vanish with this process."""
    err = _unshare(CLONE_NEWNS)
    if err != 0:
        skip(f"cannot make a mount namespace: {os.strerror(err)}")
    run(["mount", "--make-rprivate", "/"])


def enter_network_of(pid):
    """Moves this process into the network namespace of process pid."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


def enter_private_network():
    """From now on this process and its children have a network namespace
    of their own with only loopback: the daemons' real ports (25, 465, 993)
    collide with nothing, and nothing outside can reach them."""
    err = _unshare(CLONE_NEWNET)
    if err != 0:
        skip(f"cannot make a network namespace: {os.strerror(err)}")
    run(["ip", "link", "set", "lo", "up"])


def find_deb():
    """The package under test: $MG_DEB, or the newest one `make deb` left
    in this build directory (bin/../deb/). None when there is none."""
    path = os.environ.get("MG_DEB")
    if path:
        if not os.path.isfile(path):
            raise AssertionError(f"MG_DEB={path}: no such file")
        return os.path.abspath(path)
    debs = glob.glob(os.path.join(BIN_DIR, "..", "deb", "mailgenic_*.deb"))
    if not debs:
        return None
    return os.path.abspath(max(debs, key=os.path.getmtime))


def require_deb():
    deb = find_deb()
    if deb is None:
        skip("no package in the build directory: `make test-deploy` builds one (or set MG_DEB)")
    return deb


class _Lock:
    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.f = open(path, "a+")

    def __enter__(self):
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _chroot_mounts(root):
    run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")])
    run(["mount", "-t", "sysfs", "sysfs", os.path.join(root, "sys")])
    run(["mount", "--rbind", "/dev", os.path.join(root, "dev")])
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs", os.path.join(root, "run")])


def _umount_all(root):
    run(["umount", "-R", "-l", root], check=False)


def ensure_cache():
    """The debootstrap root, made once (under a lock: tests run in
    parallel). Returns its path."""
    base = os.path.join(CACHE_DIR, "root")
    stamp = os.path.join(base, ".mailgenic-cache")
    archives = os.path.join(CACHE_DIR, "archives")
    with _Lock(os.path.join(CACHE_DIR, "create.lock")):
        if os.path.exists(stamp):
            with open(stamp) as f:
                if f.read().strip() == CACHE_VERSION:
                    return base
        shutil.rmtree(base, ignore_errors=True)
        tmp = base + ".new"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"debootstrap {SUITE} into {tmp} (once; later runs reuse it)")
        started = time.monotonic()
        r = run(["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}",
                 SUITE, tmp, MIRROR], check=False, env=_proxy_env())
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = (r.stdout + r.stderr)[-2000:]
            if "Failed getting release file" in tail or "Could not resolve" in tail or \
                    "Temporary failure" in tail or "unable to fetch" in tail.lower():
                skip(f"the Debian mirror {MIRROR} is not reachable:\n{tail}")
            raise AssertionError(f"debootstrap failed:\n{tail}")
        with open(os.path.join(tmp, "etc/apt/sources.list"), "w") as f:
            f.write(f"deb {MIRROR} {SUITE} main\n"
                    f"deb {MIRROR} {SUITE}-updates main\n"
                    f"deb {SECURITY_MIRROR} {SUITE}-security main\n")
        shutil.copy("/etc/resolv.conf", os.path.join(tmp, "etc/resolv.conf"))
        # Lists for the three suites; the base packages' files go (the
        # root has them installed), downloads of later runs are kept in
        # archives/ beside it.
        pid = os.fork()
        if pid == 0:  # mounts in a child's namespace of its own
            try:
                enter_private_mounts()
                _chroot_mounts(tmp)
                r = run(["chroot", tmp, "apt-get", "update", "-q"], check=False, env=CHROOT_ENV)
                run(["chroot", tmp, "apt-get", "clean"], check=False, env=CHROOT_ENV)
                os._exit(0 if r.returncode == 0 else 1)
            except BaseException as e:  # noqa: BLE001 - report and leave the child
                print(e, file=sys.stderr)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AssertionError("apt-get update in the new root failed")
        os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
        # apt downloads as _apt where it can (provision.sh's apt-get).
        for line in open(os.path.join(tmp, "etc/passwd")):
            f = line.split(":")
            if f[0] == "_apt":
                os.chown(os.path.join(archives, "partial"), int(f[2]), 0)
        with open(os.path.join(tmp, ".mailgenic-cache"), "w") as f:
            f.write(CACHE_VERSION + "\n")
        os.rename(tmp, base)
        log(f"debootstrap root ready in {time.monotonic() - started:.0f} s: {base} "
            f"({du(base)})")
    return base


def du(path):
    r = run(["du", "-sh", path], check=False)
    return r.stdout.split()[0] if r.returncode == 0 and r.stdout else "?"


class Root:
    """A clean Debian 12 root for one test (see the module comment)."""

    def __init__(self, name):
        self.base = ensure_cache()
        self.tmp = tempfile.mkdtemp(prefix=f"mg-{name}.")
        self.path = os.path.join(self.tmp, "root")
        os.makedirs(self.path)
        upper = os.path.join(self.tmp, "upper")
        work = os.path.join(self.tmp, "work")
        os.makedirs(upper)
        os.makedirs(work)
        r = run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir={self.base},upperdir={upper},workdir={work}", self.path], check=False)
        if r.returncode != 0:
            log(f"no overlayfs ({r.stderr.strip()}): copying the root")
            run(["cp", "-a", self.base + "/.", self.path])
        _chroot_mounts(self.path)
        shutil.copy("/etc/resolv.conf", os.path.join(self.path, "etc/resolv.conf"))
        archives = os.path.join(CACHE_DIR, "archives")
        run(["mount", "--bind", archives, os.path.join(self.path, "var/cache/apt/archives")])
        self.procs = []

    def unmount_api(self):
        """Takes away /proc, /sys, /dev, /run and the download cache, for
        systemd-nspawn, which mounts its own."""
        for sub in ("var/cache/apt/archives", "run", "dev", "sys", "proc"):
            run(["umount", "-R", self.file(sub)], check=False)

    # ---- running things inside ----

    def chroot(self, *cmd, check=True, user=None, input=None, timeout=600, env=None):
        full = ["chroot"]
        if user is not None:
            full.append(f"--userspec={user}")
        full += [self.path] + list(cmd)
        e = dict(CHROOT_ENV)
        e.update(env or {})
        return run(full, check=check, input=input, timeout=timeout, env=e)

    def apt(self, *args, check=True):
        """apt-get with the download cache locked: parallel tests share it."""
        with _Lock(os.path.join(CACHE_DIR, "archives.lock")):
            return self.chroot("apt-get", "-y", "-q", "-o", "APT::Sandbox::User=root", *args,
                               check=check)

    def file(self, path):
        """The host path of a path inside."""
        return os.path.join(self.path, path.lstrip("/"))

    def copy_in(self, src, dest):
        shutil.copy(src, self.file(dest))
        return dest

    def read(self, path):
        with open(self.file(path)) as f:
            return f.read()

    def uid(self, user):
        for line in self.read("/etc/passwd").splitlines():
            f = line.split(":")
            if f[0] == user:
                return int(f[2])
        return None

    def gid(self, group):
        for line in self.read("/etc/group").splitlines():
            f = line.split(":")
            if f[0] == group:
                return int(f[2])
        return None

    def group_members(self, group):
        for line in self.read("/etc/group").splitlines():
            f = line.split(":")
            if f[0] == group:
                return [m for m in f[3].split(",") if m]
        return None

    def stat(self, path):
        return os.lstat(self.file(path))

    def processes(self):
        """PIDs of the processes running in this root."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/root") == self.path:
                    pids.append(int(entry))
            except OSError:
                pass
        return pids

    def kill_all(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.processes()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.1)
        for p in self.procs:
            p.poll()

    def close(self):
        self.kill_all()
        _umount_all(self.path)
        remove_dir(self.tmp)


def remove_dir(path, timeout=10):
    """rmtree, again while a mount namespace that is going away (a
    container's) still holds a mount point in it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                return
        except OSError as e:
            if time.monotonic() > deadline:
                log(f"cannot remove {path}: {e}")
                return
            time.sleep(0.2)


def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


# ---- systemd units ----

class Unit:
    """A unit file's settings: {section: {key: [values in order]}}."""

    def __init__(self, path):
        self.path = path
        self.sections = {}
        section = None
        with open(path) as f:
            for raw in f:
                line = raw.strip()
                if not line or line[0] in "#;":
                    continue
                if line.startswith("["):
                    section = line.strip("[]")
                    self.sections.setdefault(section, {})
                    continue
                key, _, value = line.partition("=")
                self.sections[section].setdefault(key.strip(), []).append(value.strip())

    def get(self, key, section="Service", default=None):
        values = self.sections.get(section, {}).get(key)
        return values[-1] if values else default

    def words(self, key, section="Service"):
        """A list-valued setting (several lines or space-separated)."""
        out = []
        for v in self.sections.get(section, {}).get(key, []):
            if v == "":
                out = []
            else:
                out += v.split()
        return out


def _caps(names):
    """CAP_NET_BIND_SERVICE ... in setpriv's spelling: +net_bind_service,..."""
    return ",".join("+" + n.lower().removeprefix("cap_") for n in names)


class NotifySocket:
    """The receiving end of sd_notify, as systemd's: a datagram socket
    anyone may write to."""

    def __init__(self, host_path):
        self.host_path = host_path
        if os.path.exists(host_path):
            os.unlink(host_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(host_path)
        os.chmod(host_path, 0o777)
        self.messages = []

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in m for m in self.messages):
                return True
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self.messages.append(self.sock.recv(4096).decode(errors="replace"))
            except socket.timeout:
                pass
        return any(text in m for m in self.messages)

    def close(self):
        self.sock.close()
        if os.path.exists(self.host_path):
            os.unlink(self.host_path)


def start_like_unit(root, unit, log_path, as_root=False):
    """Starts the unit's ExecStart inside root. as_root=False: as systemd
    would (User=, Group=, SupplementaryGroups=, capabilities,
    NoNewPrivileges=); as_root=True: as root, as in a container without
    systemd (the daemon switches users itself). Either way with the unit's
    UMask=, RuntimeDirectory= and a NOTIFY_SOCKET. Returns (Popen, NotifySocket)."""
    svc = unit.get("Type")
    assert svc == "notify", f"{unit.path}: Type={svc}"
    mode = int(unit.get("RuntimeDirectoryMode", default="0755"), 8)
    user = unit.get("User")
    group = unit.get("Group", default=user)
    for d in unit.words("RuntimeDirectory"):
        path = root.file(os.path.join("/run", d))
        os.makedirs(path, exist_ok=True)
        os.chown(path, root.uid(user), root.gid(group))
        os.chmod(path, mode)
    name = os.path.basename(unit.path).split(".")[0]
    notify = NotifySocket(root.file(f"/run/notify-{name}.sock"))
    cmd = ["chroot", root.path]
    if not as_root:
        amb = unit.words("AmbientCapabilities")
        bnd = unit.words("CapabilityBoundingSet")
        groups = unit.words("SupplementaryGroups")
        cmd += ["setpriv", f"--reuid={user}", f"--regid={group}",
                f"--groups={','.join(groups)}" if groups else "--clear-groups",
                f"--inh-caps=-all,{_caps(amb)}" if amb else "--inh-caps=-all",
                f"--ambient-caps=-all,{_caps(amb)}" if amb else "--ambient-caps=-all",
                f"--bounding-set=-all,{_caps(bnd)}" if bnd else "--bounding-set=-all"]
        if unit.get("NoNewPrivileges") == "yes":
            cmd.append("--no-new-privs")
    cmd += unit.get("ExecStart").split()
    umask = int(unit.get("UMask", default="0022"), 8)
    env = dict(CHROOT_ENV)
    env["NOTIFY_SOCKET"] = f"/run/notify-{name}.sock"
    logf = open(log_path, "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env,
                            preexec_fn=lambda: os.umask(umask))
    logf.close()
    root.procs.append(proc)
    return proc, notify


# ---- clients ----

def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the self-signed certificate names the host
    return ctx


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False
