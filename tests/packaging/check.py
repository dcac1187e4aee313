#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""warden packaging checks (issue 12), for what no container engine or init runs here:

- deploy/Containerfile, build stage: installs the Debian package that owns the .pc file of
  every pkg-config module in the Makefile's PKGS (dpkg -S), i.e. every -dev package;
- deploy/Containerfile, runtime stage: every shared library `ldd build/warden` resolves is
  owned (dpkg -S) by a package the stage installs: the libraries warden links directly
  (ELF NEEDED) by a package the stage names, the others by one of those packages'
  dependencies (Depends/Pre-Depends, recursively, as installed here) or by a package of
  priority `required` (in every Debian image). Derived at test time, never a fixed list;
- `make install PREFIX=/usr DESTDIR=TMP` puts the binary, the three man pages and the
  examples where they belong, with their modes, and the installed binary runs;
- the man pages render (`man -l`, and groff with all warnings: none);
- deploy/warden.service passes `systemd-analyze verify` without a message, and has
  RuntimeDirectory= and LimitNOFILE=.

usage: /usr/bin/python3 tests/packaging/check.py [--warden build/warden]
Prints "PASS name" / "FAIL name: reason" per check, then "N passed, N failed"; exit 1 if
anything failed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Failed(Exception):
    pass


def ensure(cond, msg):
    if not cond:
        raise Failed(msg)


def run(argv, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
                       **kw)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8",
                                                                              "replace")


# ---------------------------------------------------------------- Containerfile

def stages(text):
    """{stage name or index: [packages of its apt-get install lines]}; continuation lines
    joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", re.sub(r"(?m)^\s*#.*\n", "", text))
    out, name = {}, None
    for line in joined.splitlines():
        m = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            name = m.group(1) or "runtime"
            out[name] = []
            continue
        for m in re.finditer(r"apt-get install((?:\s+[^&;|]+)?)", line):
            out[name] += [w for w in m.group(1).split() if not w.startswith("-")]
    return out


def owner(path):
    """The Debian package owning path (through symlinks, and /lib -> /usr/lib merges)."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/lib/"):
            cands.append(p[4:])
        elif p.startswith("/lib/"):
            cands.append("/usr" + p)
    for p in cands:
        rc, out, _ = run(["dpkg", "-S", p])
        if rc == 0:
            return out.split(":")[0].strip()
    return None


def depends_closure(pkgs):
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        rc, out, _ = run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p])
        if rc != 0:
            continue
        for alt in out.split(","):
            for d in alt.split("|"):  # any alternative that is installed here
                d = d.strip().split(" ")[0].split(":")[0]
                if d:
                    todo.append(d)
    return seen


def makefile_pkgs():
    with open(os.path.join(ROOT, "Makefile")) as f:
        m = re.search(r"(?m)^PKGS\s*:=\s*(.*)$", f.read())
    return m.group(1).split()


def check_containerfile_build(warden):
    with open(os.path.join(ROOT, "deploy", "Containerfile")) as f:
        st = stages(f.read())
    ensure("build" in st, "no `FROM ... AS build` stage")
    missing = []
    for mod in makefile_pkgs():
        rc, d, err = run(["pkg-config", "--variable=pcfiledir", mod])
        ensure(rc == 0, "pkg-config %s: %s" % (mod, err.strip()))
        pkg = owner(os.path.join(d.strip(), mod + ".pc"))
        ensure(pkg, "no package owns %s.pc" % mod)
        if pkg not in st["build"]:
            missing.append("%s (pkg-config %s)" % (pkg, mod))
    ensure(not missing, "the build stage does not install: %s" % ", ".join(missing))


def check_containerfile_runtime(warden):
    with open(os.path.join(ROOT, "deploy", "Containerfile")) as f:
        st = stages(f.read())
    listed = st.get("runtime", [])
    ensure(listed, "no apt-get install in the runtime stage")
    rc, out, err = run(["objdump", "-p", warden])
    ensure(rc == 0, "objdump -p: %s" % err)
    needed = set(re.findall(r"(?m)^\s*NEEDED\s+(\S+)", out))
    rc, out, err = run(["ldd", warden])
    ensure(rc == 0, "ldd: %s" % err)
    libs = re.findall(r"(?m)^\s*(\S+) => (/\S+)", out)
    ensure(libs, "ldd resolved no library:\n%s" % out)
    rc, req, _ = run(["dpkg-query", "-W", "-f=${Package} ${Priority}\n"])
    required = {ln.split()[0] for ln in req.splitlines() if ln.endswith(" required")}
    base = depends_closure(required)  # in every image (libc6 among them)
    closure = depends_closure(listed) | base
    problems = []
    for soname, path in libs:
        pkg = owner(path)
        if not pkg:
            problems.append("%s (%s): no package owns it" % (soname, path))
        elif soname in needed and pkg not in listed and pkg not in base:
            problems.append("%s: warden links it; its package %s is not installed by name"
                            % (soname, pkg))
        elif pkg not in closure:
            problems.append("%s: package %s is not installed (nor a dependency)" % (soname, pkg))
    ensure(not problems, "runtime stage:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- make install, man pages

def check_install(warden):
    d = tempfile.mkdtemp(prefix="warden-install.")
    try:
        rc, out, err = run(["make", "--no-print-directory", "-C", ROOT, "install",
                            "PREFIX=/usr", "DESTDIR=" + d])
        ensure(rc == 0, "make install: exit %d\n%s%s" % (rc, out[-2000:], err[-2000:]))
        want = {"usr/bin/warden": 0o755, "usr/share/man/man8/warden.8": 0o644,
                "usr/share/man/man5/warden.conf.5": 0o644,
                "usr/share/man/man5/warden.policy.5": 0o644,
                "usr/share/doc/warden/examples/warden.conf": 0o644,
                "usr/share/doc/warden/examples/warden.policy": 0o644,
                "usr/share/doc/warden/examples/warden.service": 0o644}
        for rel, mode in want.items():
            p = os.path.join(d, rel)
            ensure(os.path.isfile(p), "%s not installed" % rel)
            ensure(os.stat(p).st_mode & 0o7777 == mode, "%s: mode %o, want %o" % (
                rel, os.stat(p).st_mode & 0o7777, mode))
        top = sorted(os.listdir(d))
        ensure(top == ["usr"], "installed outside PREFIX: %s" % top)
        rc, out, err = run([os.path.join(d, "usr/bin/warden"), "--version"])
        ensure(rc == 0 and out.startswith("warden "), "installed warden --version: %s %r" % (
            rc, out))
        rc, out, err = run(["make", "--no-print-directory", "-C", ROOT, "uninstall",
                            "PREFIX=/usr", "DESTDIR=" + d])
        ensure(rc == 0, "make uninstall: %s" % err)
        left = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
        ensure(not left, "left after uninstall: %s" % left)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check_man_pages(warden):
    env = dict(os.environ, MANWIDTH="80")
    for page, title in (("warden.8", "WARDEN(8)"), ("warden.conf.5", "WARDEN.CONF(5)"),
                        ("warden.policy.5", "WARDEN.POLICY(5)")):
        p = os.path.join(ROOT, "man", page)
        rc, out, err = run(["man", "-l", p], env=env)
        out = re.sub(".\b", "", out)  # overstrike (bold, underline) to plain text
        ensure(rc == 0 and out.lstrip().startswith(title) and "NAME" in out,
               "man -l %s: exit %d\n%s%s" % (page, rc, out[:300], err[:300]))
        rc, out, err = run(["groff", "-man", "-Tutf8", "-ww", "-z", p])
        ensure(rc == 0 and not err.strip(), "groff warnings for %s:\n%s" % (page, err))


def check_help_lists_install(warden):
    rc, out, err = run(["make", "--no-print-directory", "-C", ROOT, "help"])
    ensure(rc == 0 and "install" in out and "DESTDIR" in out, "make help: %d\n%s" % (rc, out))


# ---------------------------------------------------------------- systemd

def check_systemd_unit(warden):
    unit = os.path.join(ROOT, "deploy", "warden.service")
    with open(unit) as f:
        text = f.read()
    ensure(re.search(r"(?m)^RuntimeDirectory=warden$", text), "no RuntimeDirectory=warden")
    ensure(re.search(r"(?m)^LimitNOFILE=\d+$", text), "no LimitNOFILE=")
    if not shutil.which("systemd-analyze"):
        raise Failed("systemd-analyze is missing: `make deps` installs the systemd package")
    d = tempfile.mkdtemp(prefix="warden-unit.")
    try:
        # the unit names /usr/local/bin/warden (make install's default): verify checks that
        # the command exists, so point it at the binary under test
        p = os.path.join(d, "warden.service")
        with open(p, "w") as f:
            f.write(text.replace("/usr/local/bin/warden", os.path.abspath(warden)))
        rc, out, err = run(["systemd-analyze", "verify", p])
        msgs = (out + err).strip()
        ensure(rc == 0 and not msgs, "systemd-analyze verify: exit %d\n%s" % (rc, msgs))
    finally:
        shutil.rmtree(d, ignore_errors=True)


CHECKS = [check_containerfile_build, check_containerfile_runtime, check_install,
          check_man_pages, check_help_lists_install, check_systemd_unit]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warden", default=os.path.join(ROOT, "build", "warden"))
    args = ap.parse_args()
    warden = os.path.abspath(args.warden)
    passed = failed = 0
    for fn in CHECKS:
        name = fn.__name__[len("check_"):]
        try:
            fn(warden)
            passed += 1
            print("PASS %s" % name, flush=True)
        except (Failed, OSError, subprocess.SubprocessError) as e:
            failed += 1
            lines = str(e).splitlines() or ["(no reason)"]
            print("FAIL %s: %s" % (name, lines[0]))
            for ln in lines[1:]:
                print("    " + ln)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
