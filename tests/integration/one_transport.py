# SPDX-License-Identifier: Apache-2.0
"""warden integration suite: one transport (issue 9 item 4). gRPC core was removed in 0.2.0;
what an operator upgrading from 0.1.0 meets, through the real daemon:

- no `transport` line: warden serves on its own HTTP/2 transport, and the process has no gRPC
  core library mapped (/proc/PID/maps);
- `transport h2`, written for the two-transport stage, keeps loading and serving;
- `transport grpc-core` is a configuration error naming the file and line (exit 3; `--set`:
  exit 2), at start and under --check-config: never a silent fallback to another server;
- `prepost` (it sized gRPC core's pre-posted requests) loads, and a WARN line names the file
  and line, at start and under --check-config; --print-config no longer shows it.

Loaded by run.py (`one_transport.register(scenario)`); scenarios are named one_transport_*.
Nothing waits by a fixed sleep: Warden.start() polls for the "listening on" line.
"""
import re

import harness as H
from harness import ALLOW_RAW, Warden, ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`

REMOVED = "gRPC core was removed in 0.2.0; remove the line"
PREPOST_WARN = "'prepost' has no effect: it sized gRPC core's pre-posted requests"


def authn_demo(w, what):
    with H.channel(w.addr) as ch:
        raw = H.raw_call(ch, H.path("OnClientAuthenticate"),
                         H.authn_req("demo", "demo").SerializeToString())
        H.expect_raw(raw, ALLOW_RAW, what)


def mapped_libraries(pid):
    """The shared objects mapped into process pid (basenames)."""
    libs = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[5]:
                libs.add(parts[5].rsplit("/", 1)[-1])
    return libs


@_scenario
def one_transport_default(s, h):
    with s.check("one_transport_default_serves_without_grpc_core_loaded"):
        with Warden(h, config="# no transport line\n", name="one-default") as w:
            authn_demo(w, "default transport")
            libs = mapped_libraries(w.proc.pid)
            ensure(any(lib.startswith("libnghttp2.so") for lib in libs),
                   "libnghttp2 is not mapped: %s" % sorted(libs))
            grpc = sorted(lib for lib in libs if re.match(r"lib(grpc|gpr)\b", lib))
            ensure(not grpc, "gRPC core is mapped into warden: %s" % grpc)
    with s.check("one_transport_print_config_shows_h2_and_no_prepost"):
        rc, out, err = H.run_warden(h, ["--print-config"])
        ensure(rc == 0, "--print-config: exit %s\n%s" % (rc, H.tail(err)))
        ensure(re.search(r"(?m)^transport h2$", out), "no `transport h2` line:\n%s" % out)
        ensure("prepost" not in out, "--print-config shows prepost:\n%s" % out)


@_scenario
def one_transport_h2_line_keeps_loading(s, h):
    with s.check("one_transport_config_saying_transport_h2_still_serves"):
        with Warden(h, config="workers 2\ntransport h2\n", name="one-h2") as w:
            authn_demo(w, "transport h2")
            ensure(not w.count(r"WARN  config:"), "a config warning:\n%s" % H.tail(w.log()))


@_scenario
def one_transport_grpc_core_refused(s, h):
    conf = H.write_file(h, "grpc-core.conf",
                        "# written for 0.1.0\nworkers 2\ntransport grpc-core\n")
    want = "%s:3: 'transport grpc-core': %s" % (conf, REMOVED)
    with s.check("one_transport_grpc_core_is_a_config_error_naming_the_line"):
        for extra in ([], ["--check-config"]):
            rc, out, err = H.run_warden(h, ["--config", conf, "--listen", "127.0.0.1:0"] + extra)
            ensure(rc == 3, "%s: exit %s, want 3 (bad configuration)\n%s" % (
                extra or "start", rc, H.tail(err)))
            ensure(want in err, "%s: stderr does not say %r:\n%s" % (
                extra or "start", want, H.tail(err)))
            ensure("listening on" not in err, "it served:\n%s" % H.tail(err))
    with s.check("one_transport_grpc_core_on_the_command_line_is_a_usage_error"):
        rc, out, err = H.run_warden(h, ["--listen", "127.0.0.1:0", "--set", "transport=grpc-core"])
        ensure(rc == 2, "--set transport=grpc-core: exit %s, want 2\n%s" % (rc, H.tail(err)))
        ensure("command line: --set transport: 'transport grpc-core': " + REMOVED in err,
               "stderr does not name the flag and the removal:\n%s" % H.tail(err))


@_scenario
def one_transport_prepost_warns(s, h):
    conf = "workers 2\nprepost 64\n"
    with s.check("one_transport_prepost_loads_with_a_warning_naming_the_line"):
        with Warden(h, config=conf, name="one-prepost") as w:
            authn_demo(w, "with prepost set")
            want = "WARN  config: %s:2: %s" % (w.config_path, PREPOST_WARN)
            ensure(want in w.log(), "no %r in the log:\n%s" % (want, H.tail(w.log())))
            ensure(w.count(r"'prepost' has no effect") == 1, "not one warning:\n%s" % H.tail(
                w.log()))
    with s.check("one_transport_check_config_shows_the_prepost_warning"):
        p = H.write_file(h, "prepost.conf", conf)
        rc, out, err = H.run_warden(h, ["--config", p, "--check-config"])
        ensure(rc == 0, "--check-config: exit %s, want 0\n%s" % (rc, H.tail(err)))
        ensure("%s:2: %s" % (p, PREPOST_WARN) in err, "no warning on stderr:\n%s" % H.tail(err))
        ensure("configuration ok" in out, "no `configuration ok`:\n%s" % out)
