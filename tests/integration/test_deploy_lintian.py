"""The Debian package passes lintian: no error and no warning, except
initial-upload-closes-no-bugs (the package is not uploaded to Debian, so
there is no ITP bug for its first changelog entry to close).

Needs lintian and the package (`make test-deploy` builds it; MG_DEB names
another): exits 77 (skipped) without them.
"""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgdeploy  # noqa: E402

ALLOWED = ("initial-upload-closes-no-bugs",)


class Lintian(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if shutil.which("lintian") is None:
            mgdeploy.skip("lintian is not installed (deploy/install-deps.sh installs it)")
        cls.deb = mgdeploy.require_deb()

    def test_no_error_or_warning(self):
        r = subprocess.run(["lintian", "--tag-display-limit", "0", "--fail-on", "error,warning",
                            "--suppress-tags", ",".join(ALLOWED), self.deb],
                           capture_output=True, text=True, timeout=600)
        tags = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:")]
        self.assertEqual(tags, [], r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_changelog_names_this_version(self):
        """The changelog's top entry is the package's own version."""
        version = subprocess.run(["dpkg-deb", "-f", self.deb, "Version"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                           "debian", "changelog")
        with open(src) as f:
            first = f.readline()
        self.assertIn(f"({version})", first)


if __name__ == "__main__":
    unittest.main(verbosity=2)
