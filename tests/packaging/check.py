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
  RuntimeDirectory= and LimitNOFILE=;
- deploy/kubernetes.yaml (no cluster here, so no kubectl): it parses, its ConfigMap and
  Secret materialised where the Deployment mounts them pass `warden --check-config`, with
  the Secret's defaultMode; ports, probes (liveness /healthz, readiness never /readyz, both
  answered by warden started on that configuration), the rollout strategy, the PDB, the
  security context and the shutdown budget agree with warden's effective configuration;
  deploy/emqx-exhook.conf points at the Service's port and waits longer than warden's
  longest Redis wait.
- docs: every relative markdown link resolves inside the repo (and its #anchor to a
  heading); the operator pages write only real directives as `redis_*`/`jwt_*`/`session_*`/
  `cache_*` words, and docs/redis.md and docs/jwt.md each name every directive they guide.

usage: /usr/bin/python3 tests/packaging/check.py [--warden build/warden]
Prints "PASS name" / "FAIL name: reason" per check, then "N passed, N failed"; exit 1 if
anything failed.
"""
import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

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


# ---------------------------------------------------------------- Kubernetes, EMQX

def seconds(text):
    """A duration as warden and EMQX write them (500ms, 5s, 1m, 24h; a bare number is
    seconds), in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", str(text))
    ensure(m, "not a duration: %r" % text)
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}[m.group(2)]
    return float(m.group(1)) * scale


def effective(printed):
    """{directive: value} from `warden --print-config` (comments dropped)."""
    out = {}
    for line in printed.splitlines():
        line = line.split("   #")[0].strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition(" ")
            out[k] = v.strip()
    return out


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def k8s_objects():
    import yaml  # python3-yaml (make deps)
    with open(os.path.join(ROOT, "deploy", "kubernetes.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        ensure(isinstance(d, dict) and "kind" in d and "apiVersion" in d and
               d.get("metadata", {}).get("name"), "an object without kind/apiVersion/name")
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"):
        ensure(len(by_kind.get(kind, [])) == 1, "want one %s, have %d" % (
            kind, len(by_kind.get(kind, []))))
    return {k: v[0] for k, v in by_kind.items()}


def materialise(objs, root):
    """Write the ConfigMap and Secret volumes of the warden container under root, at their
    mountPath, with their defaultMode; return (container, {mountPath: local dir})."""
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    ctr = [c for c in pod["containers"] if c["name"] == "warden"]
    ensure(ctr, "no container named warden")
    ctr = ctr[0]
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {}
    for vm in ctr.get("volumeMounts", []):
        v = vols.get(vm["name"])
        ensure(v, "volumeMount %s names no volume" % vm["name"])
        ensure(vm.get("readOnly"), "volumeMount %s is not readOnly" % vm["name"])
        local = os.path.join(root, vm["mountPath"].lstrip("/"))
        os.makedirs(local)
        if "configMap" in v:
            src = v["configMap"]
            ensure(src["name"] == objs["ConfigMap"]["metadata"]["name"],
                   "volume %s: ConfigMap %s is not in the file" % (vm["name"], src["name"]))
            files = dict(objs["ConfigMap"].get("data", {}))
        elif "secret" in v:
            src = v["secret"]
            ensure(src["secretName"] == objs["Secret"]["metadata"]["name"],
                   "volume %s: Secret %s is not in the file" % (vm["name"], src["secretName"]))
            files = {k: base64.b64decode(x).decode() for k, x in
                     objs["Secret"].get("data", {}).items()}
            files.update(objs["Secret"].get("stringData", {}))
            # warden refuses o+r secret files; Kubernetes' default is 0644
            ensure(src.get("defaultMode") == 0o440, "Secret volume %s: defaultMode %s, want "
                   "0440" % (vm["name"], oct(src.get("defaultMode", 0o644))))
        else:
            raise Failed("volume %s: only configMap and secret volumes are checked" % vm["name"])
        for key, text in files.items():
            p = os.path.join(local, key)
            with open(p, "w") as f:
                f.write(text)
            os.chmod(p, src.get("defaultMode", 0o644))
        mounts[vm["mountPath"]] = local
    return ctr, mounts


def relocate(text, mounts):
    for mp in sorted(mounts, key=len, reverse=True):
        text = re.sub(r"(?<![\w/.-])" + re.escape(mp.rstrip("/")) + r"(?=/)", mounts[mp], text)
    return text


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def probe_paths_answer(warden, argv, paths):
    """Start warden on argv with both ports moved to free loopback ports; GET each path.
    Returns {path: status}. Stopped by PID."""
    grpc_port, metrics_port = free_port(), free_port()
    log = tempfile.TemporaryFile()
    p = subprocess.Popen([warden] + argv + ["--set", "listen=127.0.0.1:%d" % grpc_port,
                                            "--set", "metrics_listen=127.0.0.1:%d" % metrics_port],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            if p.poll() is not None:
                log.seek(0)
                raise Failed("warden exited %s: %s" % (p.returncode,
                                                       log.read().decode()[-1000:]))
            try:
                return {path: http_get("http://127.0.0.1:%d%s" % (metrics_port, path))[0]
                        for path in paths}
            except (urllib.error.URLError, ConnectionError, OSError):
                ensure(time.monotonic() < deadline, "metrics port never answered")
                time.sleep(0.05)
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def emqx_exhook():
    with open(os.path.join(ROOT, "deploy", "emqx-exhook.conf")) as f:
        text = f.read()
    m = re.search(r"(?s)^exhook \{(.*?)^\}", text, re.M)
    ensure(m, "emqx-exhook.conf: no exhook { } block")
    live = re.sub(r"(?m)#.*$", "", m.group(1))
    out = {}
    for key in ("url", "request_timeout", "failed_action", "pool_size", "auto_reconnect"):
        v = re.findall(r"(?m)^\s*%s\s*=\s*\"?([^\"\s]+)\"?" % key, live)
        ensure(len(v) == 1, "emqx-exhook.conf: want one %s in the live server, have %d" % (
            key, len(v)))
        out[key] = v[0]
    return out


def check_kubernetes(warden):
    objs = k8s_objects()
    dep = objs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    d = tempfile.mkdtemp(prefix="warden-k8s.")
    try:
        ctr, mounts = materialise(objs, d)
        argv = [relocate(a, mounts) for a in ctr.get("args", [])]
        ensure("--config" in argv, "the container's args name no --config")
        conf = argv[argv.index("--config") + 1]
        ensure(os.path.isfile(conf), "--config %s is in no mounted volume" % ctr["args"])
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(relocate(text, mounts))
        rc, out, err = run([warden] + argv + ["--check-config"])
        ensure(rc == 0, "warden --check-config on the ConfigMap: exit %d\n%s%s" % (
            rc, out, err))
        rc, out, err = run([warden] + argv + ["--print-config"])
        ensure(rc == 0, "--print-config: exit %d\n%s" % (rc, err))
        eff = effective(out)

        ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
        ensure(ports.get("grpc") == port_of(eff["listen"]), "containerPort grpc %s, warden "
               "listens on %s" % (ports.get("grpc"), eff["listen"]))
        ensure("metrics_listen" in eff, "no metrics_listen: /healthz is not served")
        ensure(not eff["metrics_listen"].startswith("127."), "metrics_listen %s: the kubelet "
               "probes the pod address, not loopback" % eff["metrics_listen"])
        ensure(ports.get("metrics") == port_of(eff["metrics_listen"]),
               "containerPort metrics %s, metrics_listen %s" % (ports.get("metrics"),
                                                                eff["metrics_listen"]))
        ensure(eff.get("workers", "0") != "0", "workers 0 counts the node's CPUs, not the "
               "container's limit")

        def probe_target(probe):
            for kind in ("grpc", "httpGet", "tcpSocket"):
                if kind in probe:
                    port = probe[kind]["port"]
                    port = ports.get(port) if isinstance(port, str) else port
                    ensure(port in ports.values(), "probe port %s is no containerPort" % port)
                    return kind, port, probe[kind].get("path")
            raise Failed("probe without grpc/httpGet/tcpSocket: %s" % probe)

        kind, port, path = probe_target(ctr["livenessProbe"])
        ensure((kind, port, path) == ("httpGet", ports["metrics"], "/healthz"),
               "liveness is %s %s %s, want httpGet /healthz on the metrics port" % (
                   kind, port, path))
        kind, port, path = probe_target(ctr["readinessProbe"])
        ensure((kind, port) == ("grpc", ports["grpc"]) or
               (kind, port, path) == ("httpGet", ports["metrics"], "/healthz"),
               "readiness is %s %s %s: want the gRPC health check on the ExHook port or "
               "/healthz (never /readyz: a Redis outage would empty the Service)" % (
                   kind, port, path))
        status = probe_paths_answer(warden, argv, ["/healthz", "/nonexistent"])
        ensure(status["/healthz"] == 200 and status["/nonexistent"] == 404,
               "warden on this configuration answered %s" % status)

        # shutdown: preStop sleep + shutdown_grace + a handler waiting on Redis
        pre = ctr.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep = float(pre[-1]) if pre and pre[0].endswith("sleep") else 0.0
        need = sleep + seconds(eff["shutdown_grace"])
        if any(k in eff for k in ("redis_host", "redis_socket", "redis_sentinel")):
            need += seconds(eff["redis_connect_timeout"]) + seconds(eff["redis_timeout"])
        tgps = pod.get("terminationGracePeriodSeconds", 30)
        ensure(tgps > need, "terminationGracePeriodSeconds %s <= preStop %gs + shutdown_grace "
               "+ Redis wait = %gs" % (tgps, sleep, need))

        ru = dep["spec"]["strategy"]
        ensure(ru["type"] == "RollingUpdate" and ru["rollingUpdate"] == {
            "maxUnavailable": 0, "maxSurge": 1}, "strategy %s" % ru)
        ensure(dep["spec"]["replicas"] >= 2, "replicas %s" % dep["spec"]["replicas"])
        for kind in ("Service", "PodDisruptionBudget"):
            sel = objs[kind]["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            ensure(sel and all(labels.get(k) == v for k, v in sel.items()),
                   "%s selector %s does not match the pods %s" % (kind, sel, labels))
        ensure(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(),
               "Deployment selector does not match its pods")
        pdb = objs["PodDisruptionBudget"]["spec"]
        ensure(pdb.get("maxUnavailable") == 1 or
               0 < pdb.get("minAvailable", 0) < dep["spec"]["replicas"], "PDB %s" % pdb)

        psc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
        ensure(psc.get("runAsNonRoot") and psc.get("runAsUser", 0) != 0, "pod not non-root")
        ensure(csc.get("readOnlyRootFilesystem") and csc.get("allowPrivilegeEscalation") is
               False and csc.get("capabilities", {}).get("drop") == ["ALL"],
               "container securityContext %s" % csc)
        res = ctr.get("resources", {})
        ensure(res.get("requests", {}).get("cpu") and res.get("limits", {}).get("memory"),
               "resources %s" % res)

        svc = objs["Service"]["spec"]["ports"]
        grpc = [p for p in svc if p.get("targetPort") in ("grpc", ports["grpc"])]
        ensure(len(grpc) == 1, "the Service has no port to the grpc containerPort")

        emqx = emqx_exhook()
        m = re.fullmatch(r"https?://([^:/]+):(\d+)/?", emqx["url"])
        ensure(m, "emqx-exhook.conf url %s has no port" % emqx["url"])
        ensure(m.group(1).split(".")[0] == objs["Service"]["metadata"]["name"],
               "emqx-exhook.conf url host %s is not the Service" % m.group(1))
        ensure(int(m.group(2)) == grpc[0]["port"], "emqx-exhook.conf url port %s, Service "
               "port %s" % (m.group(2), grpc[0]["port"]))
        ensure(emqx["failed_action"] == "deny", "failed_action %s" % emqx["failed_action"])
        wait = seconds(eff["redis_connect_timeout"]) + seconds(eff["redis_timeout"])
        ensure(seconds(emqx["request_timeout"]) > wait, "EMQX request_timeout %s <= warden's "
               "longest Redis wait %gs: EMQX would give up before redis_on_error answers" % (
                   emqx["request_timeout"], wait))
    finally:
        shutil.rmtree(d, ignore_errors=True)

def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    h = re.sub(r"[`*]", "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def check_doc_links(warden):
    """Every relative link in the repo's markdown resolves to a file of the repo (and its
    #anchor to a heading there), and no page cites a path outside the repo (issue 12)."""
    pages = [os.path.join(ROOT, "README.md")]
    for d in ("docs", "deploy", "bench", "tests"):
        for base, _dirs, files in os.walk(os.path.join(ROOT, d)):
            pages += [os.path.join(base, f) for f in files if f.endswith(".md")]
    problems = []
    anchors = {}
    for page in pages:
        text = open(page, encoding="utf-8").read()
        rel = os.path.relpath(page, ROOT)
        for m in re.finditer(r"/work/|\bshared/(spec|research|reference)/", text):
            problems.append("%s: cites a path outside the repo: %r" % (rel, m.group(0)))
        for m in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = m.group(1)
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
            if not os.path.exists(dest):
                problems.append("%s: link %s: no such file" % (rel, target))
                continue
            if anchor and dest.endswith(".md"):
                if dest not in anchors:
                    heads = re.findall(r"^#+\s+(.*)$", open(dest, encoding="utf-8").read(), re.M)
                    anchors[dest] = {_slug(x) for x in heads}
                if anchor not in anchors[dest]:
                    problems.append("%s: link %s: no such heading" % (rel, target))
    ensure(not problems, "\n".join(problems))


# Operator pages: there a `redis_*`, `jwt_*`, `session_*` or `cache_*` word in code is a
# directive. (docs/internals*, reliability.md and bench/ name functions, fields and tests.)
OPERATOR_PAGES = ["README.md", "docs/configuration.md", "docs/operations.md", "docs/policy.md",
                  "docs/redis.md", "docs/jwt.md", "docs/sessions.md", "docs/cache.md",
                  "docs/exhook.md", "deploy/README.md"]
# Each guide names every directive of its prefixes (with an example).
GUIDE_PREFIXES = {"docs/redis.md": ("redis_", "session_store", "session_redis_",
                                    "cache_invalidation"),
                  "docs/jwt.md": ("jwt_",)}
# Words of that shape that are not directives, and say so where they appear.
NOT_DIRECTIVES = {
    "redis_type",  # EMQX's key, in docs/redis.md's migration table
    "redis_acl",  # a field of a `warden test` case (docs/policy.md "Test files")
}
DIRECTIVE_WORD = re.compile(r"(?<![\w.$/-])((?:redis|jwt|session|cache)_[a-z0-9_]+)(?![\w.(])")


def code_text(text):
    """The code of a markdown page: the lines of its fenced blocks and its `spans`."""
    out, fence = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        elif fence:
            out.append(line)
        else:
            out += re.findall(r"`([^`\n]+)`", line)
    return out


def check_doc_directives(warden):
    """The operator pages name only real directives (the table's, from --print-config) where
    they write a `redis_*`/`jwt_*`/`session_*`/`cache_*` word in code, and docs/redis.md and
    docs/jwt.md each name every directive they are the guide for (issue 12: jwt.md named
    verifier fields, not directives)."""
    rc, out, err = run([warden, "--print-config"])
    ensure(rc == 0, "--print-config: %s" % err.strip())
    names = set(re.findall(r"(?m)^(?:# )?([a-z][a-z0-9_]*) ", out))
    ensure("redis_host" in names and "jwt_secret" in names,
           "--print-config lists no directive:\n%s" % out[:500])
    problems = []
    for rel in OPERATOR_PAGES:
        code = code_text(open(os.path.join(ROOT, rel), encoding="utf-8").read())
        words = {w for s in code for w in DIRECTIVE_WORD.findall(s)}
        for w in sorted(words - names - NOT_DIRECTIVES):
            problems.append("%s: `%s` is not a directive" % (rel, w))
        prefixes = GUIDE_PREFIXES.get(rel)
        for n in sorted(n for n in names - words if prefixes and n.startswith(prefixes)):
            problems.append("%s: does not name the directive %s" % (rel, n))
    ensure(not problems, "\n".join(problems))


CHECKS = [check_containerfile_build, check_containerfile_runtime, check_install,
          check_man_pages, check_help_lists_install, check_systemd_unit, check_kubernetes,
          check_doc_links, check_doc_directives]


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
