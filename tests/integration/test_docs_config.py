#!/usr/bin/python3
"""docs/configuration.md against the schema in common/settings.c.

The parser accepts exactly the keys of the settings_schema[] table in
common/settings.c; docs/configuration.md describes each in a table
(| key | type | default | meaning |) under "## Global" or "## [section]".
This test reads both and fails on any difference, so that the two cannot
drift apart:

- every key of the schema is documented in its section, and nothing else
  is: no key the parser would refuse;
- the type matches (string, path, number, size, duration, mode, listen,
  log-level; a choice lists exactly its words in backquotes);
- the range in the type column (`number (1–64)`, `duration (5m–1h)`)
  is the schema's min and max, and a key with a range in the schema shows
  it (modes excepted: those are 0–0777 by type);
- the default: a key with a default shows it, first thing in backquotes,
  with the same value (compared as a size or a duration where the type
  is one); a key whose schema default is empty does not show a literal
  (it says "none", or how the value is derived);
- the meaning is not empty;
- every `[section] key` written anywhere in docs/*.md and README.md,
  every key = value in a configuration example (a fenced block with a
  [section] line) and every `key = value` in the prose names a key that
  exists (and, for a choice, one of its words).

The configuration checks read only the sources. With the programs built
($MG_TEST_BIN_DIR, as ctest sets it) the options each program's --help
lists are also looked for in its manual page (deploy/man/), every mgadm
command of `mgadm --help` in docs/mgadm.md, and the mgqueue commands in
docs/queue.md; without them those checks are skipped.
"""
import glob
import os
import re
import subprocess
import unittest

SOURCE_DIR = os.environ.get("MG_TEST_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SETTINGS_C = os.path.join(SOURCE_DIR, "common", "settings.c")
CONFIG_MD = os.path.join(SOURCE_DIR, "docs", "configuration.md")
BIN_DIR = os.environ.get("MG_TEST_BIN_DIR", os.path.join(os.getcwd(), "bin"))
# program -> the argument that prints its usage
PROGRAMS = {
    "mgimapd": "--help", "mgsmtpd": "--help", "mgauthd": "--help", "mgadm": "--help",
    "mgqueue": "--help", "mgsendmail": "--help",
}

TYPE_NAMES = {
    "T_STRING": "string", "T_PATH": "path", "T_UINT": "number", "T_SIZE": "size",
    "T_DURATION": "duration", "T_MODE": "mode", "T_LISTEN": "listen",
    "T_LOGLEVEL": "log-level", "T_CHOICE": "choice",
}
UINT64_MAX = 2**64 - 1


def parse_size(text):
    """common/settings.c mg_settings_parse_size(), in Python."""
    m = re.fullmatch(r"([0-9]+)(?:([kKmMgGtT])i?[bB]?)?", text)
    if m is None:
        raise ValueError(f"not a size: {text!r}")
    mult = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(m.group(1)) * mult[m.group(2).lower() if m.group(2) else None]


def parse_duration(text):
    """common/settings.c mg_settings_parse_duration(), in milliseconds."""
    m = re.fullmatch(r"([0-9]+)(|s|ms|m|min|h|d)", text)
    if m is None:
        raise ValueError(f"not a duration: {text!r}")
    mult = {"": 1000, "s": 1000, "ms": 1, "m": 60000, "min": 60000, "h": 3600000,
            "d": 86400000}
    return int(m.group(1)) * mult[m.group(2)]


def parse_value(type_name, text):
    if type_name == "size":
        return parse_size(text)
    if type_name == "duration":
        return parse_duration(text)
    if type_name == "number":
        if not re.fullmatch(r"[0-9]+", text):
            raise ValueError(f"not a number: {text!r}")
        return int(text)
    if type_name == "mode":
        return int(text, 8)
    return text


def c_number(text):
    text = text.strip()
    if text == "UINT64_MAX":
        return UINT64_MAX
    m = re.fullmatch(r"(0[0-7]*|[1-9][0-9]*)[uUlL]*", text)
    if m is None:
        raise ValueError(f"cannot read the C number {text!r}")
    return int(m.group(1), 8) if m.group(1).startswith("0") else int(m.group(1))


def c_strings(text):
    """Adjacent C string literals ("a" "b") to one Python string."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    if re.sub(r'"((?:[^"\\]|\\.)*)"', "", text).strip():
        raise ValueError(f"not only string literals: {text!r}")
    return "".join(p.encode().decode("unicode_escape") for p in parts)


def read_schema():
    """[(section, key, type, default, min, max, choices)] from settings.c."""
    with open(SETTINGS_C, encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"settings_schema\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    if m is None:
        raise AssertionError("settings_schema[] not found in common/settings.c")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    body = re.sub(r"//[^\n]*", "", body)
    entry_re = re.compile(
        r'\{\s*"(?P<section>[^"]*)"\s*,\s*"(?P<key>[^"]*)"\s*,\s*(?P<type>T_\w+)\s*,'
        r'\s*[SG]\([^)]*\)\s*,\s*(?P<default>(?:"(?:[^"\\]|\\.)*"\s*)+),'
        r'\s*(?:(?P<nolimit>NOLIMIT)|(?P<min>[^,{}]+),\s*(?P<max>[^,{}]+),'
        r'\s*(?P<choices>NULL|"[^"]*"))\s*\}', re.S)
    entries = []
    for e in entry_re.finditer(body):
        if e.group("nolimit"):
            lo, hi, choices = 0, UINT64_MAX, None
        else:
            lo, hi = c_number(e.group("min")), c_number(e.group("max"))
            choices = None if e.group("choices") == "NULL" else c_strings(e.group("choices"))
        entries.append((e.group("section"), e.group("key"), TYPE_NAMES[e.group("type")],
                        c_strings(e.group("default")), lo, hi, choices))
    opened = len(re.findall(r'\{\s*"', body))
    if opened != len(entries):
        raise AssertionError(f"common/settings.c: {opened} schema entries, but only "
                             f"{len(entries)} could be read: update this test's pattern")
    return entries


def read_doc_tables():
    """{(section, key): (type cell, default cell, meaning, line number)}."""
    tables = {}
    section = None
    with open(CONFIG_MD, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        h = re.match(r"^## (?:\[([a-z_]+)\]|(Global))\s*$", line)
        if h:
            section = h.group(1) or ""
            continue
        if line.startswith("## "):
            section = None
            continue
        if section is None or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != 4:
            raise AssertionError(f"configuration.md:{n}: a key row needs 4 cells: {line}")
        km = re.fullmatch(r"`([a-z0-9_]+)`", cells[0])
        if km is None:
            raise AssertionError(f"configuration.md:{n}: the key cell is not `key`: {cells[0]}")
        name = (section, km.group(1))
        if name in tables:
            raise AssertionError(f"configuration.md:{n}: {name} documented twice")
        tables[name] = (cells[1], cells[2], cells[3], n)
    return tables


def show(section, key):
    return f"[{section}] {key}" if section else key


class DocsConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.schema = read_schema()
        cls.docs = read_doc_tables()

    def test_schema_read(self):
        self.assertGreater(len(self.schema), 50)
        keys = [(s, k) for s, k, *_ in self.schema]
        self.assertEqual(len(keys), len(set(keys)), "a key twice in the schema")

    def test_same_keys(self):
        in_code = {(s, k) for s, k, *_ in self.schema}
        in_docs = set(self.docs)
        missing = sorted(show(*k) for k in in_code - in_docs)
        extra = sorted(show(*k) for k in in_docs - in_code)
        self.assertEqual(missing, [], "keys of common/settings.c not in docs/configuration.md")
        self.assertEqual(extra, [], "keys in docs/configuration.md the parser does not know")

    def test_types_and_ranges(self):
        problems = []
        for section, key, type_name, _default, lo, hi, choices in self.schema:
            doc = self.docs.get((section, key))
            if doc is None:
                continue
            cell, line = doc[0], doc[3]
            where = f"configuration.md:{line}: {show(section, key)}"
            if type_name == "choice":
                words = re.findall(r"`([^`]+)`", cell)
                if sorted(words) != sorted(choices.split("|")) or \
                        re.sub(r"`[^`]+`|,|\bor\b|\s", "", cell):
                    problems.append(f"{where}: type {cell!r}, the parser takes one of "
                                    f"{choices.replace('|', ', ')} (write `a` or `b`)")
                continue
            m = re.fullmatch(r"([a-z-]+)(?: \((.+?)–(.+?)\))?", cell)
            if m is None:
                problems.append(f"{where}: type cell {cell!r} is not 'TYPE' or 'TYPE (MIN–MAX)'")
                continue
            if m.group(1) != type_name:
                problems.append(f"{where}: documented as {m.group(1)}, the parser's type is "
                                f"{type_name}")
                continue
            has_range = (lo, hi) != (0, UINT64_MAX)
            if m.group(2) is None:
                if has_range and type_name != "mode":
                    problems.append(f"{where}: no range documented; the parser takes "
                                    f"{lo}–{hi}" + (" ms" if type_name == "duration" else ""))
                continue
            if not has_range:
                problems.append(f"{where}: a range is documented, the parser has none")
                continue
            try:
                dlo, dhi = parse_value(type_name, m.group(2)), parse_value(type_name, m.group(3))
            except ValueError as e:
                problems.append(f"{where}: range: {e}")
                continue
            if (dlo, dhi) != (lo, hi):
                unit = " ms" if type_name == "duration" else ""
                problems.append(f"{where}: range {m.group(2)}–{m.group(3)} is "
                                f"{dlo}–{dhi}{unit}, the parser's is {lo}–{hi}{unit}")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_defaults(self):
        problems = []
        for section, key, type_name, default, _lo, _hi, _choices in self.schema:
            doc = self.docs.get((section, key))
            if doc is None:
                continue
            cell, line = doc[1], doc[3]
            where = f"configuration.md:{line}: {show(section, key)}"
            literal = re.match(r"`([^`]*)`", cell)
            if default == "":
                if literal is not None or cell == "":
                    problems.append(f"{where}: the default is empty (unset): write 'none' or "
                                    f"how it is derived, not {cell!r}")
                continue
            if literal is None:
                problems.append(f"{where}: default {cell!r} does not start with the value "
                                f"`{default}` in backquotes")
                continue
            doc_value = literal.group(1)
            if type_name == "listen":
                doc_value = re.sub(r"\s*,\s*", ", ", doc_value)
            try:
                same = parse_value(type_name, doc_value) == parse_value(type_name, default)
            except ValueError as e:
                problems.append(f"{where}: default: {e}")
                continue
            if not same:
                problems.append(f"{where}: documented default `{literal.group(1)}`, the "
                                f"parser's is `{default}`")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_meanings(self):
        empty = [show(*k) for k, v in self.docs.items() if len(v[2]) < 3]
        self.assertEqual(empty, [], "keys without an explanation")

    def test_references_in_docs(self):
        """`[section] key` in prose and key = value in examples exist."""
        known = {(s, k) for s, k, *_ in self.schema}
        sections = {s for s, _ in known}
        files = sorted(glob.glob(os.path.join(SOURCE_DIR, "docs", "*.md")))
        files.append(os.path.join(SOURCE_DIR, "README.md"))
        problems = []
        for path in files:
            name = os.path.relpath(path, SOURCE_DIR)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for m in re.finditer(r"`\[([a-z_]+)\] ([a-z0-9_]+)`", text):
                if (m.group(1), m.group(2)) not in known:
                    line = text.count("\n", 0, m.start()) + 1
                    problems.append(f"{name}:{line}: `[{m.group(1)}] {m.group(2)}` is not a key")
            for block in re.finditer(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
                body = block.group(1)
                if not re.search(r"^\[[a-z_]+\]\s*$", body, re.M):
                    continue
                section = ""
                start = text.count("\n", 0, block.start(1)) + 1
                for i, raw in enumerate(body.split("\n")):
                    ln = raw.strip()
                    h = re.fullmatch(r"\[([a-z_]+)\]", ln)
                    if h:
                        section = h.group(1)
                        if section not in sections:
                            problems.append(f"{name}:{start + i}: unknown section [{section}]")
                        continue
                    kv = re.match(r"([a-z0-9_]+)\s*=", ln)
                    if kv and (section, kv.group(1)) not in known:
                        problems.append(f"{name}:{start + i}: {show(section, kv.group(1))} "
                                        f"is not a key")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_settings_in_prose(self):
        """`key = value` written inline names a key, with a valid choice."""
        by_name = {}
        for section, key, type_name, _d, _lo, _hi, choices in self.schema:
            by_name.setdefault(key, []).append((section, type_name, choices))
        not_ours = {"key", "auto"}  # the syntax itself; Dovecot's auto = create
        files = sorted(glob.glob(os.path.join(SOURCE_DIR, "docs", "*.md")))
        files.append(os.path.join(SOURCE_DIR, "README.md"))
        problems = []
        for path in files:
            name = os.path.relpath(path, SOURCE_DIR)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for m in re.finditer(r"`([a-z0-9_]+) = ([^`]*)`", text):
                key, value = m.group(1), m.group(2)
                line = text.count("\n", 0, m.start()) + 1
                if key in not_ours:
                    continue
                if key not in by_name:
                    problems.append(f"{name}:{line}: `{key} = ...`: no such key")
                    continue
                defs = by_name[key]
                if all(t == "choice" for _, t, _ in defs) and \
                        not any(value in c.split("|") for _, _, c in defs):
                    problems.append(f"{name}:{line}: `{key} = {value}`: not one of "
                                    + " / ".join(c for _, _, c in defs))
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_parsers_agree(self):
        """This test's size and duration readers on a few known values."""
        self.assertEqual(parse_size("16M"), 16777216)
        self.assertEqual(parse_size("4KiB"), 4096)
        self.assertEqual(parse_size("1T"), 1099511627776)
        self.assertEqual(parse_duration("5m"), 300000)
        self.assertEqual(parse_duration("30"), 30000)
        self.assertEqual(parse_duration("100ms"), 100)
        self.assertRaises(ValueError, parse_duration, "5x")


def read_text(*parts):
    with open(os.path.join(SOURCE_DIR, *parts), encoding="utf-8") as f:
        return f.read()


def usage(program):
    path = os.path.join(BIN_DIR, program)
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"{path} is not built")
    res = subprocess.run([path, PROGRAMS[program]], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, MG_USERDB_PATH=""))
    if res.returncode != 0:
        raise AssertionError(f"{program} {PROGRAMS[program]} exited {res.returncode}: "
                             f"{res.stderr}")
    return res.stdout


class DocsProgramsTest(unittest.TestCase):
    def test_options_in_manual_pages(self):
        """Every option a program's --help lists is in its manual page."""
        problems = []
        for program in PROGRAMS:
            text = usage(program)
            options = set()
            for line in text.split("\n"):
                m = re.match(r"^\s+(-[-\w]+)(?:,\s*(-[-\w]+))?", line)
                if m:
                    options.update(o for o in m.groups() if o)
            if not options:
                problems.append(f"{program}: no options found in its usage")
            page = read_text("deploy", "man", program + ".8").replace("\\-", "-")
            page = re.sub(r"\\f[BIRP]", "", page)
            documented = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", page))
            for o in sorted(options - documented):
                problems.append(f"deploy/man/{program}.8: {o} (in {program}'s usage) is missing")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    def test_mgadm_commands_in_docs(self):
        text = usage("mgadm")
        doc = read_text("docs", "mgadm.md")
        commands = [m.group(1) for m in re.finditer(
            r"^  ((?:domain|user|alias|auth|resolve|config|ca)\b.*?)\s{2,}\S", text, re.M)]
        self.assertGreater(len(commands), 10, text)
        missing = [f"mgadm {c}" for c in commands if f"mgadm {c}" not in doc]
        self.assertEqual(missing, [], "commands of mgadm --help not in docs/mgadm.md")

    def test_mgqueue_commands_in_docs(self):
        text = usage("mgqueue")
        doc = read_text("docs", "queue.md")
        commands = re.findall(r"^  (list|flush|[a-z]+ ID)\s{2,}", text, re.M)
        self.assertGreaterEqual(len(commands), 5, text)
        missing = [c for c in commands if f"mgqueue [-c FILE] {c}" not in doc]
        self.assertEqual(missing, [], "commands of mgqueue --help not in docs/queue.md")


if __name__ == "__main__":
    unittest.main()
