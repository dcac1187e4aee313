# SPDX-License-Identifier: Apache-2.0
"""warden integration suite, running warden as an operator does (issue 12):

- `warden check`-style start-up checks of what the configuration names: an admin_socket
  whose directory is missing, or a file in its place, is an error with file:line before
  warden listens; secrets from files (`redis_password_file`, `jwt_secret_file`): trailing
  newline dropped, world-readable files, empty files and a secret set both ways refused,
  masked in --print-config; relative paths in a configuration file (`policy`, the secret
  files) resolve against its directory, on the command line against the working directory;
- an encrypted TLS key (PEM with a passphrase) is refused at once with a clear error, on
  both transports and by --check-config; warden never asks for a passphrase, nor reads one
  from its standard input (which here holds the right passphrase, and warden runs in a
  session of its own, without a controlling terminal, so OpenSSL's default prompt would
  read it from there);

Loaded by run.py (`ops.register(scenario)`); scenarios are named ops_*. Every warden here
runs to completion within a timeout; a warden that would wait for input is killed at it
and the check fails.
"""
import os
import subprocess

import harness as H
from harness import ensure

SCENARIOS = H.Scenarios()
_scenario = SCENARIOS.add
register = SCENARIOS.register  # run.py: `MODULE.register(scenario)`


def run(h, args, stdin=b"", timeout=10, cwd=None):
    """warden ARGS in a new session (no controlling terminal) with `stdin` on a pipe, in
    directory cwd; returns (rc, stdout, stderr), rc None if it had to be killed at the
    timeout."""
    p = subprocess.Popen([h.warden] + list(args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=H.WARDEN_ENV,
                         start_new_session=True, cwd=cwd)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = None
    err = err.decode("utf-8", "replace")
    H.note_output(" ".join(["warden"] + list(args)), err)
    return rc, out.decode("utf-8", "replace"), err


# ---------------------------------------------------------------- encrypted TLS key

@_scenario
def ops_tls_encrypted_key_refused(s, h):
    d = os.path.dirname(H.write_file(h, "README", "encrypted key\n"))
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    with s.check("ops_tls_encrypted_key_generated"):
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "2",
                            "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
                            "-passout", "pass:secret"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        ensure(r.returncode == 0, "openssl req: %s" % r.stdout.decode(errors="replace"))
        with open(key) as f:
            ensure("ENCRYPTED" in f.readline(), "the key is not encrypted")
    policy = H.write_file(h, "p.policy", 'user "u" "plain:pw"\nauthn users\n')
    base = ["--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key,
            "--set", "policy=" + policy]
    cases = [("check_config", ["--check-config"], 3),
             ("start_h2", ["--set", "transport=h2"], 1)]
    for name, extra, want in cases:
        with s.check("ops_tls_encrypted_key_refused_%s" % name):
            rc, out, err = run(h, base + extra, stdin=b"secret\n")
            ensure(rc is not None, "warden did not exit within 10 s (waiting for a "
                   "passphrase?)\n%s" % H.tail(err))
            ensure(rc == want, "exit %s, want %d\nstdout: %s\n%s" % (rc, want, out[:300],
                                                                     H.tail(err)))
            ensure("%s: the private key is encrypted" % key in err,
                   "no clear error naming the key:\n%s" % H.tail(err))
            ensure("pass phrase" not in (out + err).lower(), "a passphrase prompt:\n%s" %
                   H.tail(out + err))
            ensure("configuration ok" not in out and "listening on" not in err,
                   "warden accepted the key (read the passphrase from stdin?)\n%s" % H.tail(err))


# ---------------------------------------------------------------- admin_socket

@_scenario
def ops_admin_socket_checked_before_listening(s, h):
    d = os.path.dirname(H.write_file(h, "afile", "not a directory\n"))
    afile = os.path.join(d, "afile")
    cases = [("missing_directory", os.path.join(d, "nodir", "admin.sock"),
              "directory %s: No such file or directory" % os.path.join(d, "nodir")),
             ("parent_not_a_directory", os.path.join(afile, "admin.sock"),
              "%s is not a directory" % afile),
             ("path_is_a_regular_file", afile, "exists and is not a socket")]
    for name, sock, why in cases:
        conf = H.write_file(h, "w.conf", "# admin socket\nadmin_socket %s\n" % sock)
        with s.check("ops_admin_socket_%s_check_config_file_line" % name):
            rc, out, err = H.run_warden(h, ["--config", conf, "--check-config"], timeout=10)
            ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
            want = "%s:2: admin_socket %s: " % (conf, sock)
            ensure(want in err and why in err, "no %r ... %r:\n%s" % (want, why, H.tail(err)))
            ensure("configuration ok" not in out, "--check-config said ok")
        with s.check("ops_admin_socket_%s_refused_before_listening" % name):
            rc, out, err = H.run_warden(h, ["--config", conf, "--listen", "127.0.0.1:0"],
                                        timeout=10)
            ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
            ensure("listening on" not in err, "warden listened first:\n%s" % H.tail(err))
            ensure(len(err.splitlines()) <= 3, "%d lines on stderr:\n%s" % (
                len(err.splitlines()), H.tail(err)))
    with s.check("ops_admin_socket_from_set_names_the_flag"):
        sock = os.path.join(d, "nodir", "a.sock")
        rc, out, err = H.run_warden(h, ["--set", "admin_socket=" + sock, "--check-config"],
                                    timeout=10)
        ensure(rc == 3 and "command line: --set admin_socket: admin_socket %s" % sock in err,
               "exit %s\n%s" % (rc, H.tail(err)))
    with s.check("ops_admin_socket_good_directory_ok"):
        sock = os.path.join(d, "admin.sock")
        rc, out, err = H.run_warden(h, ["--set", "admin_socket=" + sock, "--check-config"],
                                    timeout=10)
        ensure(rc == 0 and "configuration ok" in out, "exit %s\n%s" % (rc, H.tail(err)))
        ensure(not os.path.exists(sock), "--check-config created the socket")


# ---------------------------------------------------------------- secrets from files

def write_mode(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@_scenario
def ops_secret_files(s, h):
    import time
    import stores  # JWT minting (tests/integration/stores.py)
    secret = "ops-jwt-secret-0123456789abcdef-0123456789"
    d = os.path.dirname(H.write_file(h, "README", "secret files\n"))
    os.mkdir(os.path.join(d, "secrets"))
    write_mode(os.path.join(d, "secrets", "jwt"), secret + "\n", 0o600)
    write_mode(os.path.join(d, "secrets", "redis"), "ops-redis-pw\r\n", 0o640)
    pol = write_mode(os.path.join(d, "jwt.policy"),
                     "authn jwt\nauthn default deny\nauthz default deny\n", 0o644)
    # relative paths: against the configuration file's directory, not warden's cwd
    conf = write_mode(os.path.join(d, "warden.conf"),
                      "policy jwt.policy\njwt_secret_file secrets/jwt\n"
                      "redis_host 127.0.0.1\nredis_password_file secrets/redis\n", 0o644)
    with s.check("ops_secret_file_jwt_verifies_with_the_newline_stripped"):
        with H.Warden(h, args=["--config", conf], name="ops-secret") as w, \
                H.channel(w.addr) as ch:
            claims = {"exp": int(time.time()) + 600}
            H.expect_raw(stores.authn(ch, "u", stores.jwt_hs(claims, secret)), H.ALLOW_RAW,
                         "token signed with the file's secret")
            H.expect_raw(stores.authn(ch, "u", stores.jwt_hs(claims, secret + "\n")),
                         H.DENY_RAW, "token signed with the secret and its newline")
    with s.check("ops_secret_files_masked_in_print_config"):
        rc, out, err = H.run_warden(h, ["--config", conf, "--print-config"], timeout=10)
        ensure(rc == 0, "exit %s\n%s" % (rc, H.tail(err)))
        for name, path in (("jwt_secret", "secrets/jwt"), ("redis_password", "secrets/redis")):
            ensure("# %s <redacted> (from %s_file)" % (name, name) in out.splitlines(),
                   "%s not masked:\n%s" % (name, out))
            ensure("%s_file %s" % (name, os.path.join(d, path)) in out.splitlines(),
                   "%s_file path not printed:\n%s" % (name, out))
        ensure(secret not in out + err and "ops-redis-pw" not in out + err,
               "a secret is printed:\n%s" % out)
    bad = [("world_readable", "jwt_secret_file secrets/open\n",
            lambda: write_mode(os.path.join(d, "secrets", "open"), secret, 0o644),
            "readable by every user (mode 0644)"),
           ("both_inline_and_file", "jwt_secret %s\njwt_secret_file secrets/jwt\n" % secret,
            None, "'jwt_secret_file' and 'jwt_secret' are both set"),
           ("empty", "jwt_secret_file secrets/empty\n",
            lambda: write_mode(os.path.join(d, "secrets", "empty"), "\n", 0o600), "is empty"),
           ("missing", "redis_password_file secrets/none\n", None, "No such file")]
    for name, text, prep, why in bad:
        with s.check("ops_secret_file_%s_exit_3" % name):
            if prep:
                prep()
            c = write_mode(os.path.join(d, "bad-%s.conf" % name),
                           "policy jwt.policy\n" + text, 0o644)
            rc, out, err = H.run_warden(h, ["--config", c, "--check-config"], timeout=10)
            line = len(text.splitlines()) + 1
            ensure(rc == 3, "exit %s, want 3\n%s" % (rc, H.tail(err)))
            ensure("%s:%d: " % (c, line) in err and why in err,
                   "no %s:%d: ... %r:\n%s" % (c, line, why, H.tail(err)))
            ensure(secret not in err, "the secret is in the message:\n%s" % H.tail(err))
    with s.check("ops_secret_file_conflict_with_set_exit_2"):
        rc, out, err = H.run_warden(h, ["--config", conf, "--set", "jwt_secret=" + secret,
                                        "--check-config"], timeout=10)
        ensure(rc == 2 and "'jwt_secret' and 'jwt_secret_file' are both set" in err,
               "exit %s\n%s" % (rc, H.tail(err)))
        ensure(secret not in err, "the secret is in the message")


# ---------------------------------------------------------------- relative paths

@_scenario
def ops_relative_paths(s, h):
    d = os.path.dirname(H.write_file(h, "README", "relative paths\n"))
    etc = os.path.join(d, "etc")
    os.mkdir(etc)
    write_mode(os.path.join(etc, "warden.policy"),
               'user "u" "plain:pw"\nauthn users\nauthn default deny\n', 0o644)
    conf = write_mode(os.path.join(etc, "warden.conf"), "policy warden.policy\n", 0o644)
    with s.check("ops_policy_relative_to_the_config_file"):
        rc, out, err = run(h, ["--config", conf, "--check-config"], cwd="/")
        ensure(rc == 0 and "configuration ok" in out, "from /: exit %s\n%s" % (rc, H.tail(err)))
        rc, out, err = run(h, ["--config", conf, "--print-config"], cwd="/")
        ensure("policy %s" % os.path.join(etc, "warden.policy") in out.splitlines(),
               "--print-config does not show the resolved path:\n%s" % out)
    with s.check("ops_policy_relative_on_the_command_line_is_cwd"):
        rc, out, err = run(h, ["--set", "policy=etc/warden.policy", "--check-config"], cwd=d)
        ensure(rc == 0 and "configuration ok" in out, "from %s: exit %s\n%s" % (
            d, rc, H.tail(err)))
        rc, out, err = run(h, ["--set", "policy=etc/warden.policy", "--check-config"], cwd="/")
        ensure(rc == 3 and "etc/warden.policy: error: cannot open" in err,
               "from /: exit %s\n%s" % (rc, H.tail(err)))
