/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for src/store/jwks_http.c against a real HTTPS server (no mocks). Group setup
 * makes a temp dir, a test CA, a server certificate for IP 127.0.0.1 and one for another
 * name (openssl CLI), a second unrelated CA, and two EC P-256 JWT signing keys (OpenSSL,
 * in process). Tests start a small python3 http.server wrapped in TLS on a random loopback
 * port in 21000-31999 (the script writes the port it bound to a file once it listens; a
 * port already taken makes it exit and another is tried) and stop it by PID; the per-test
 * teardown, which cmocka runs after failed tests too, kills whatever is left, and
 * PR_SET_PDEATHSIG covers a crashing test binary. Tokens are minted here with OpenSSL
 * (ES256, DER signature converted to JOSE R||S), never with the code under test.
 *
 * Nothing depends on timing luck: refresh intervals are an hour, so only kicks and retries
 * fetch; every wait polls for an observable fact (a stats counter, a file the server
 * writes) with a generous deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/wd.h"
#include "store/jwks_http.h"
#include "store/jwt.h"

#define NOW 1700000000LL
#define PAYLOAD "{\"sub\":\"alice\",\"exp\":1700000600}"
#define PYTHON "/usr/bin/python3"
#define DEADLINE_MS 30000 /* generous: a poll, not a measurement */
#define HOUR_MS 3600000u

static char dir[64];  /* the temp dir */
static char www[128]; /* served files */
static char logpath[128];
static int logfd = -1;
static EVP_PKEY *key_a, *key_b;

static const struct wd_client client = {
    .node = "n",
    .clientid = "dev-1",
    .username = "alice",
    .peerhost = "127.0.0.1",
    .protocol = "mqtt",
    .mountpoint = "",
    .cn = "",
    .dn = "",
};

/* ---- small helpers ---- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void path_in(char *out, size_t cap, const char *base, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", base, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* Writes base/name atomically (temp file + rename): the server never sees half a file. */
static void put_file(const char *base, const char *name, const char *text, size_t len)
{
    char p[256], tmp[300];
    path_in(p, sizeof(p), base, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, p), 0);
}

static bool exists_in(const char *base, const char *name)
{
    char p[256];
    path_in(p, sizeof(p), base, name);
    return access(p, F_OK) == 0;
}

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- JWT minting and JWKS text (EC P-256, ES256) ---- */

#define b64url(b, p, n) wd_base64_encode((b), (p), (n), WD_BASE64_URL)

/* An ES256 token with header {"alg":"ES256","kid":kid}, signed with pk. Malloc'd. */
static char *mint(EVP_PKEY *pk, const char *kid)
{
    char hdr[128];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
    struct wd_buf b = {0};
    b64url(&b, (const unsigned char *)hdr, strlen(hdr));
    wd_buf_putc(&b, '.');
    b64url(&b, (const unsigned char *)PAYLOAD, strlen(PAYLOAD));

    unsigned char der[256], sig[64];
    size_t dl = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &dl, (unsigned char *)b.s, b.len), 1);
    EVP_MD_CTX_free(ctx);
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    assert_non_null(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
    ECDSA_SIG_free(es);
    wd_buf_putc(&b, '.');
    b64url(&b, sig, sizeof(sig));
    return b.s;
}

static void put_bn(struct wd_buf *b, EVP_PKEY *pk, const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char buf[32];
    assert_int_equal(EVP_PKEY_get_bn_param(pk, param, &bn), 1);
    assert_int_equal(BN_bn2binpad(bn, buf, 32), 32);
    b64url(b, buf, sizeof(buf));
    BN_free(bn);
}

/* {"keys":[<pk's public JWK with kid>]}, malloc'd */
static char *jwks_text(EVP_PKEY *pk, const char *kid)
{
    struct wd_buf b = {0};
    wd_buf_printf(&b, "{\"keys\":[{\"kid\":\"%s\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"", kid);
    put_bn(&b, pk, OSSL_PKEY_PARAM_EC_PUB_X);
    wd_buf_puts(&b, "\",\"y\":\"");
    put_bn(&b, pk, OSSL_PKEY_PARAM_EC_PUB_Y);
    wd_buf_puts(&b, "\"}]}");
    return b.s;
}

static void serve_jwks(EVP_PKEY *pk, const char *kid)
{
    char *j = jwks_text(pk, kid);
    put_file(www, "jwks.json", j, strlen(j));
    free(j);
}

/* wd_jwt_verify's status for a token signed by pk with kid */
static enum wd_jwt_status check(const struct wd_jwt_verifier *v, EVP_PKEY *pk, const char *kid)
{
    char *tok = mint(pk, kid);
    struct wd_jwt_result r;
    int rc = wd_jwt_verify(v, tok, strlen(tok), &client, NOW, &r);
    assert_true((rc == WD_OK) == (r.status == WD_JWT_OK));
    enum wd_jwt_status st = r.status;
    wd_jwt_result_cleanup(&r);
    free(tok);
    return st;
}

static struct wd_jwt_verifier *verifier_over(struct wd_jwt_keyset *ks)
{
    static const struct wd_jwt_config cfg = {.check_iat = true};
    struct wd_jwt_verifier *v = NULL;
    char err[200];
    if (wd_jwt_verifier_new(&cfg, ks, &v, err, sizeof(err)) != WD_OK)
        fail_msg("verifier: %s", err);
    return v;
}

/* ---- fixture: python3 HTTPS servers, tracked by PID ---- */

static const char server_py[] =
    "import http.server, os, ssl, sys, time\n"
    "root, cert, key, port, portfile = sys.argv[1:6]\n"
    "class H(http.server.SimpleHTTPRequestHandler):\n"
    "    def __init__(self, *a, **kw):\n"
    "        super().__init__(*a, directory=root, **kw)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "    def do_GET(self):\n"
    "        p = self.path.split('?', 1)[0]\n"
    "        if self.headers.get('Accept') != 'application/json':\n"
    "            self.send_error(406)\n"
    "            return\n"
    "        if p == '/slow':\n"
    "            if os.path.exists(os.path.join(root, 'slow.on')):\n"
    "                open(os.path.join(root, 'slow.hit'), 'w').close()\n"
    "                time.sleep(300)\n"
    "                return\n"
    "            self.path = '/jwks.json'\n"
    "        elif p.startswith('/to-https/') or p.startswith('/to-http/'):\n"
    "            scheme = p.split('/')[1][3:]\n"
    "            self.send_response(302)\n"
    "            self.send_header('Location', '%s://127.0.0.1:%d/%s' % (scheme,\n"
    "                             self.server.server_address[1], p.split('/', 2)[2]))\n"
    "            self.send_header('Content-Length', '0')\n"
    "            self.end_headers()\n"
    "            return\n"
    "        elif p.startswith('/nolength/'):\n"
    "            with open(os.path.join(root, p.split('/', 2)[2]), 'rb') as f:\n"
    "                data = f.read()\n"
    "            self.send_response(200)\n"
    "            self.end_headers()\n" /* HTTP/1.0, no Content-Length: ends at close */
    "            self.wfile.write(data)\n"
    "            return\n"
    "        super().do_GET()\n"
    "class S(http.server.ThreadingHTTPServer):\n"
    "    daemon_threads = True\n"
    "    def handle_error(self, request, client_address):\n"
    "        pass\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain(cert, key)\n"
    "try:\n"
    "    srv = S(('127.0.0.1', int(port)), H)\n"
    "except OSError:\n"
    "    sys.exit(3)\n"
    /* the handshake happens in the handler thread: a client that gives up mid-handshake
     * (wrong CA) cannot stall the accept loop */
    "srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)\n"
    "with open(portfile + '.tmp', 'w') as f:\n"
    "    f.write(str(srv.server_address[1]))\n"
    "os.rename(portfile + '.tmp', portfile)\n"
    "srv.serve_forever()\n";

struct srv {
    pid_t pid;
    int port;
};

#define MAX_SRV 8
static pid_t live[MAX_SRV];

static void track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_SRV; i++) {
        if (add && live[i] == 0) {
            live[i] = pid;
            return;
        }
        if (!add && live[i] == pid) {
            live[i] = 0;
            return;
        }
    }
}

static void kill_all(void)
{
    for (int i = 0; i < MAX_SRV; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

/* Starts the server with cert/key (names in dir) on `port`. Returns true once it listens;
 * false if it exited first (port taken). */
static bool srv_spawn(struct srv *s, const char *cert, const char *key, int port)
{
    static int seq;
    char script[128], certp[128], keyp[128], portfile[128], portarg[16], name[32];
    path_in(script, sizeof(script), dir, "server.py");
    path_in(certp, sizeof(certp), dir, cert);
    path_in(keyp, sizeof(keyp), dir, key);
    snprintf(name, sizeof(name), "port.%d", seq++);
    path_in(portfile, sizeof(portfile), dir, name);
    snprintf(portarg, sizeof(portarg), "%d", port);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl(PYTHON, PYTHON, script, www, certp, keyp, portarg, portfile, (char *)NULL);
        _exit(127);
    }
    track(pid, true);
    uint64_t deadline = mono_ms() + DEADLINE_MS;
    while (mono_ms() < deadline) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int got = 0;
            bool ok = fscanf(f, "%d", &got) == 1 && got == port;
            fclose(f);
            unlink(portfile);
            assert_true(ok);
            s->pid = pid;
            s->port = port;
            return true;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) { /* exited: could not bind */
            track(pid, false);
            return false;
        }
        sleep_ms(20);
    }
    fail_msg("the python3 HTTPS server did not start within %d ms", DEADLINE_MS);
    return false;
}

/* On a random high port, retrying when one is taken */
static void srv_start(struct srv *s, const char *cert, const char *key)
{
    for (int attempt = 0; attempt < 20; attempt++)
        if (srv_spawn(s, cert, key, 21000 + (int)(random() % 11000)))
            return;
    fail_msg("no free port for the HTTPS server after 20 attempts");
}

static void srv_stop(struct srv *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        track(s->pid, false);
        s->pid = 0;
    }
}

static void url_of(char *out, size_t cap, const struct srv *s, const char *path)
{
    snprintf(out, cap, "https://127.0.0.1:%d%s", s->port, path);
}

static const char *ca(void)
{
    static char p[128];
    path_in(p, sizeof(p), dir, "ca.pem");
    return p;
}

/* Polls until *counter (read through stats) reaches want; fails after DEADLINE_MS. */
static void wait_stats(const struct wd_jwks_refresher *r, bool failed, uint64_t want)
{
    uint64_t deadline = mono_ms() + DEADLINE_MS, ok = 0, bad = 0;
    for (;;) {
        wd_jwks_refresher_stats(r, &ok, &bad);
        if ((failed ? bad : ok) >= want)
            return;
        if (mono_ms() > deadline)
            fail_msg("waited %d ms for %s >= %llu (ok %llu, failed %llu)", DEADLINE_MS,
                     failed ? "failed" : "ok", (unsigned long long)want, (unsigned long long)ok,
                     (unsigned long long)bad);
        sleep_ms(20);
    }
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    struct wd_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        wd_buf_put(&b, chunk, n);
    fclose(f);
    wd_buf_putc(&b, '\0');
    return b.s;
}

/* ---- group fixture ---- */

static int group_setup(void **state)
{
    (void)state;
    /* a proxy from the environment must not intercept loopback requests */
    const char *proxies[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < WD_ARRAY_LEN(proxies); i++)
        unsetenv(proxies[i]);
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    atexit(kill_all);

    snprintf(dir, sizeof(dir), "/tmp/wd_jwks_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(www, sizeof(www), "%s/www", dir);
    if (mkdir(www, 0700) != 0)
        return -1;
    char script[128];
    snprintf(script, sizeof(script), "%s/server.py", dir);
    FILE *f = fopen(script, "w");
    if (!f || fputs(server_py, f) < 0 || fclose(f) != 0)
        return -1;

    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cd %s && exec >/dev/null 2>&1 && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj /CN=wd-test-ca && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=wd-other-ca && "
             "openssl req -x509 -CA ca.pem -CAkey ca.key -newkey ec -pkeyopt "
             "ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.pem -days 2 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-addext basicConstraints=critical,CA:FALSE && "
             "openssl req -x509 -CA ca.pem -CAkey ca.key -newkey ec -pkeyopt "
             "ec_paramgen_curve:P-256 -nodes -keyout wrong.key -out wrong.pem -days 2 "
             "-subj /CN=wrong.example -addext subjectAltName=DNS:wrong.example "
             "-addext basicConstraints=critical,CA:FALSE",
             dir);
    if (run(cmd) != 0)
        return -1;

    key_a = EVP_EC_gen("P-256");
    key_b = EVP_EC_gen("P-256");
    if (!key_a || !key_b)
        return -1;

    snprintf(logpath, sizeof(logpath), "%s/warden.log", dir);
    logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (logfd < 0)
        return -1;
    wd_log_set_fd(logfd);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kill_all();
    wd_log_set_fd(2);
    if (logfd >= 0)
        close(logfd);
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return run(cmd) == 0 ? 0 : -1;
}

static int test_teardown(void **state)
{
    (void)state;
    kill_all();
    return 0;
}

/* ---- one fetch ---- */

static void fetch_returns_a_key_set_that_verifies_tokens_signed_with_its_key(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    serve_jwks(key_a, "a1");
    char url[128], err[512] = "x";
    url_of(url, sizeof(url), &s, "/jwks.json");
    struct wd_jwks_http_opts o = {.url = url, .ca_file = ca()};
    struct wd_jwt_keyset *ks = NULL;
    int rc = wd_jwks_http_fetch(&o, &ks, err, sizeof(err));
    if (rc != WD_OK)
        fail_msg("fetch: %s (%s)", wd_rc_str(rc), err);
    assert_string_equal(err, "");
    assert_int_equal(wd_jwt_keyset_count(ks), 1);
    struct wd_jwt_verifier *v = verifier_over(ks);
    wd_jwt_keyset_release(ks);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    assert_int_equal(check(v, key_b, "a1"), WD_JWT_BAD_SIGNATURE);
    assert_int_equal(check(v, key_a, "other"), WD_JWT_UNKNOWN_KID);
    wd_jwt_verifier_free(v);
    srv_stop(&s);
}

static void fetch_refuses_a_server_certificate_the_ca_did_not_sign(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    serve_jwks(key_a, "a1");
    char url[128], other[128], err[512];
    url_of(url, sizeof(url), &s, "/jwks.json");
    path_in(other, sizeof(other), dir, "other-ca.pem");
    struct wd_jwks_http_opts o = {.url = url, .ca_file = other};
    struct wd_jwt_keyset *ks = NULL;
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_EBACKEND);
    assert_null(ks);
    assert_non_null(strstr(err, "certificate"));
    /* the system store does not know the test CA either */
    o.ca_file = NULL;
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_EBACKEND);
    assert_non_null(strstr(err, "certificate"));
    /* an unreadable CA file is a TLS configuration error */
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_ETLS);
    assert_null(ks);
    srv_stop(&s);
}

static void fetch_refuses_a_certificate_issued_for_another_host_name(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "wrong.pem", "wrong.key"); /* signed by the right CA, for wrong.example */
    serve_jwks(key_a, "a1");
    char url[128], err[512];
    url_of(url, sizeof(url), &s, "/jwks.json");
    struct wd_jwks_http_opts o = {.url = url, .ca_file = ca()};
    struct wd_jwt_keyset *ks = NULL;
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_EBACKEND);
    assert_null(ks);
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_non_null(strstr(err, "certificate"));
    srv_stop(&s);
}

static void fetch_refuses_plain_http_and_other_schemes_before_connecting(void **state)
{
    (void)state;
    const char *bad[] = {
        "http://127.0.0.1:1/jwks.json", "HTTP://127.0.0.1/x", "ftp://h/x", "https://", "",
        "file:///etc/passwd",           "127.0.0.1/jwks.json"};
    for (size_t i = 0; i < WD_ARRAY_LEN(bad); i++) {
        struct wd_jwks_http_opts o = {.url = bad[i]};
        struct wd_jwt_keyset *ks = NULL;
        char err[512] = "";
        assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_EINVAL);
        assert_null(ks);
        assert_true(err[0] != '\0');
    }
    struct wd_jwks_http_opts none = {0};
    struct wd_jwt_keyset *ks = NULL;
    assert_int_equal(wd_jwks_http_fetch(&none, &ks, NULL, 0), WD_EINVAL);
    assert_int_equal(wd_jwks_http_fetch(NULL, &ks, NULL, 0), WD_EINVAL);
}

static void fetch_follows_https_redirects_but_never_to_http(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    serve_jwks(key_a, "a1");
    char url[128], err[512];
    struct wd_jwt_keyset *ks = NULL;
    url_of(url, sizeof(url), &s, "/to-https/jwks.json");
    struct wd_jwks_http_opts o = {.url = url, .ca_file = ca()};
    int rc = wd_jwks_http_fetch(&o, &ks, err, sizeof(err));
    if (rc != WD_OK)
        fail_msg("https redirect: %s (%s)", wd_rc_str(rc), err);
    assert_int_equal(wd_jwt_keyset_count(ks), 1);
    wd_jwt_keyset_release(ks);
    ks = NULL;
    url_of(url, sizeof(url), &s, "/to-http/jwks.json");
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_EBACKEND);
    assert_null(ks);
    assert_non_null(strstr(err, "only https://"));
    /* four hops is one too many */
    url_of(url, sizeof(url), &s, "/to-https/to-https/to-https/to-https/jwks.json");
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_EBACKEND);
    assert_null(ks);
    assert_non_null(strstr(err, "3"));
    url_of(url, sizeof(url), &s, "/to-https/to-https/to-https/jwks.json");
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_OK);
    wd_jwt_keyset_release(ks);
    srv_stop(&s);
}

static void fetch_reports_the_status_of_an_answer_other_than_200(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    char url[128], err[512];
    url_of(url, sizeof(url), &s, "/missing.json");
    struct wd_jwks_http_opts o = {.url = url, .ca_file = ca()};
    struct wd_jwt_keyset *ks = NULL;
    assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_EBACKEND);
    assert_null(ks);
    assert_non_null(strstr(err, "404"));
    srv_stop(&s);
}

static void fetch_aborts_a_body_over_max_bytes_with_or_without_content_length(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    char *j = jwks_text(key_a, "a1");
    size_t len = strlen(j);
    put_file(www, "jwks.json", j, len);
    /* a body of 1 MiB: JSON whitespace after a valid document, so only the size is wrong */
    size_t big = 1024 * 1024;
    char *huge = wd_malloc(big);
    memset(huge, ' ', big);
    memcpy(huge, j, len);
    put_file(www, "huge.json", huge, big);
    free(huge);

    char url[128], err[512];
    struct wd_jwt_keyset *ks = NULL;
    struct wd_jwks_http_opts o = {.url = url, .ca_file = ca(), .max_bytes = len - 1};
    const char *paths[] = {"/jwks.json", "/nolength/jwks.json", "/huge.json",
                           "/nolength/huge.json"};
    for (size_t i = 0; i < WD_ARRAY_LEN(paths); i++) {
        url_of(url, sizeof(url), &s, paths[i]);
        o.max_bytes = i < 2 ? len - 1 : 0; /* 0: the default, WD_JWT_JWKS_MAX */
        assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_ETOOBIG);
        assert_null(ks);
        char want[64];
        snprintf(want, sizeof(want), "over %zu bytes", i < 2 ? len - 1 : WD_JWT_JWKS_MAX);
        if (!strstr(err, want))
            fail_msg("%s: \"%s\" does not say \"%s\"", paths[i], err, want);
    }
    /* exactly max_bytes is fine, with or without Content-Length */
    o.max_bytes = len;
    for (size_t i = 0; i < 2; i++) {
        url_of(url, sizeof(url), &s, paths[i]);
        assert_int_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_OK);
        wd_jwt_keyset_release(ks);
    }
    free(j);
    srv_stop(&s);
}

static void fetch_reports_a_body_that_is_not_a_usable_jwks(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    put_file(www, "html.json", "<html>login</html>", 18);
    put_file(www, "nokeys.json", "{\"issuer\":\"x\"}", 14);
    put_file(www, "empty.json", "{\"keys\":[]}", 11);
    put_file(www, "zero.json", "", 0);
    const struct {
        const char *path;
        int rc;
    } cases[] = {
        {"/html.json", WD_ESYNTAX},
        {"/nokeys.json", WD_ESYNTAX},
        {"/empty.json", WD_ENOENT},
        {"/zero.json", WD_ESYNTAX},
    };
    for (size_t i = 0; i < WD_ARRAY_LEN(cases); i++) {
        char url[128], err[512] = "";
        url_of(url, sizeof(url), &s, cases[i].path);
        struct wd_jwks_http_opts o = {.url = url, .ca_file = ca()};
        struct wd_jwt_keyset *ks = NULL;
        int rc = wd_jwks_http_fetch(&o, &ks, err, sizeof(err));
        if (rc != cases[i].rc)
            fail_msg("%s: %s (%s)", cases[i].path, wd_rc_str(rc), err);
        assert_null(ks);
        assert_non_null(strstr(err, "jwks: "));
    }
    srv_stop(&s);
}

static void fetch_errors_never_contain_the_url_password_or_query(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    int port = s.port;
    srv_stop(&s); /* nothing listens there now: a connection error naming the host */
    char url[160], err[512];
    snprintf(url, sizeof(url), "https://user:s3cret@127.0.0.1:%d/jwks.json?token=t0ken", port);
    struct wd_jwks_http_opts o = {.url = url, .ca_file = ca(), .timeout_ms = 2000};
    struct wd_jwt_keyset *ks = NULL;
    assert_int_not_equal(wd_jwks_http_fetch(&o, &ks, err, sizeof(err)), WD_OK);
    assert_true(err[0] != '\0');
    assert_null(strstr(err, "s3cret"));
    assert_null(strstr(err, "t0ken"));
    assert_null(strchr(err, '\n'));
}

/* ---- the refresher ---- */

static struct wd_jwks_refresher *start(const char *url, struct wd_jwt_verifier *v)
{
    struct wd_jwks_http_opts o = {
        .url = url, .ca_file = ca(), .refresh_ms = HOUR_MS, .retry_ms = 100};
    struct wd_jwks_refresher *r = NULL;
    char err[512];
    int rc = wd_jwks_refresher_start(&o, v, &r, err, sizeof(err));
    if (rc != WD_OK)
        fail_msg("start: %s (%s)", wd_rc_str(rc), err);
    return r;
}

static void refresher_installs_a_rotated_key_set_after_a_kick(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    serve_jwks(key_a, "a1");
    char url[128];
    url_of(url, sizeof(url), &s, "/jwks.json");
    struct wd_jwt_verifier *v = verifier_over(NULL);
    struct wd_jwks_refresher *r = start(url, v);
    uint64_t ok = 0, failed = 0;
    wd_jwks_refresher_stats(r, &ok, &failed);
    assert_int_equal(ok, 1);
    assert_int_equal(failed, 0);
    assert_true(wd_jwks_refresher_last_ok_ms(r) > 0);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    assert_int_equal(check(v, key_b, "b1"), WD_JWT_UNKNOWN_KID);
    uint64_t gen = wd_jwt_verifier_generation(v);

    serve_jwks(key_b, "b1"); /* the IdP rotates */
    wd_jwks_refresher_kick(r);
    wait_stats(r, false, 2);
    assert_int_equal(check(v, key_b, "b1"), WD_JWT_OK);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_UNKNOWN_KID);
    assert_int_equal(wd_jwt_verifier_generation(v), gen + 1);

    /* the same document again: counted, but not swapped (cached verdicts stay valid) */
    wd_jwks_refresher_kick(r);
    wait_stats(r, false, 3);
    assert_int_equal(wd_jwt_verifier_generation(v), gen + 1);
    assert_int_equal(check(v, key_b, "b1"), WD_JWT_OK);
    wd_jwks_refresher_stats(r, NULL, &failed);
    assert_int_equal(failed, 0);

    wd_jwks_refresher_stop(r);
    assert_int_equal(check(v, key_b, "b1"), WD_JWT_OK); /* stop keeps the set */
    wd_jwt_verifier_free(v);
    srv_stop(&s);
}

static void refresher_keeps_the_last_good_key_set_when_a_refresh_fails(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    serve_jwks(key_a, "a1");
    char url[128];
    url_of(url, sizeof(url), &s, "/jwks.json");
    struct wd_jwt_verifier *v = verifier_over(NULL);
    struct wd_jwks_refresher *r = start(url, v);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    uint64_t gen = wd_jwt_verifier_generation(v);

    srv_stop(&s); /* the IdP goes away */
    wd_jwks_refresher_kick(r);
    wait_stats(r, true, 1);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    assert_int_equal(wd_jwt_verifier_generation(v), gen);

    /* a broken document is a failure too, and keeps the set as well */
    srv_start(&s, "srv.pem", "srv.key");
    struct wd_jwks_refresher *r2 = NULL;
    uint64_t failed = 0, ok = 0;
    wd_jwks_refresher_stop(r);
    put_file(www, "jwks.json", "{\"keys\":", 8);
    url_of(url, sizeof(url), &s, "/jwks.json");
    r2 = start(url, v); /* first fetch fails: the verifier keeps what it has */
    wd_jwks_refresher_stats(r2, &ok, &failed);
    assert_int_equal(ok, 0);
    assert_int_equal(failed, 1);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    wd_jwks_refresher_kick(r2);
    wait_stats(r2, true, 2);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    assert_int_equal(wd_jwt_verifier_generation(v), gen);
    wd_jwks_refresher_stop(r2);

    char *log = slurp(logpath);
    assert_non_null(strstr(log, "refresh failed"));
    assert_non_null(strstr(log, "keeping the last good key set (1 key(s)"));
    free(log);
    wd_jwt_verifier_free(v);
    srv_stop(&s);
}

static void refresher_started_while_the_server_is_down_refuses_tokens_then_recovers(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    int port = s.port;
    srv_stop(&s);
    serve_jwks(key_a, "a1");
    char url[160];
    snprintf(url, sizeof(url), "https://u:s3cret@127.0.0.1:%d/jwks.json?token=t0ken", port);
    struct wd_jwt_verifier *v = verifier_over(NULL);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_NO_KEYS);

    struct wd_jwks_refresher *r = start(url, v); /* succeeds although nothing answers */
    uint64_t ok = 9, failed = 9;
    wd_jwks_refresher_stats(r, &ok, &failed);
    assert_int_equal(ok, 0);
    assert_true(failed >= 1);
    assert_int_equal(wd_jwks_refresher_last_ok_ms(r), 0);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_NO_KEYS);

    /* the IdP comes up on the same port */
    bool up = false;
    for (int i = 0; i < 50 && !up; i++) {
        up = srv_spawn(&s, "srv.pem", "srv.key", port);
        if (!up)
            sleep_ms(100);
    }
    if (!up)
        fail_msg("port %d was taken by someone else in the meantime", port);
    wd_jwks_refresher_kick(r);
    wait_stats(r, false, 1);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    wd_jwks_refresher_stop(r);

    char *log = slurp(logpath);
    char where[96];
    snprintf(where, sizeof(where), "https://127.0.0.1:%d/jwks.json?...", port);
    assert_non_null(strstr(log, where));
    assert_non_null(strstr(log, "no key set fetched yet"));
    assert_non_null(strstr(log, "fetched again after"));
    assert_null(strstr(log, "s3cret"));
    assert_null(strstr(log, "t0ken"));
    free(log);
    wd_jwt_verifier_free(v);
    srv_stop(&s);
}

static void refresher_stop_returns_while_a_fetch_is_blocked_on_a_slow_server(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "srv.pem", "srv.key");
    serve_jwks(key_a, "a1");
    char url[128];
    url_of(url, sizeof(url), &s, "/slow"); /* serves jwks.json until slow.on exists */
    struct wd_jwt_verifier *v = verifier_over(NULL);
    struct wd_jwks_refresher *r = start(url, v);
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);

    put_file(www, "slow.on", "", 0); /* from now on the server answers nothing for 300 s */
    wd_jwks_refresher_kick(r);
    uint64_t deadline = mono_ms() + DEADLINE_MS;
    while (!exists_in(www, "slow.hit")) {
        if (mono_ms() > deadline)
            fail_msg("the refresher never reached the slow server");
        sleep_ms(20);
    }
    uint64_t t0 = mono_ms();
    wd_jwks_refresher_stop(r); /* must return: aborted by the stop flag or by timeout_ms */
    print_message("stop returned after %llu ms (timeout_ms 5000)\n",
                  (unsigned long long)(mono_ms() - t0));
    assert_int_equal(check(v, key_a, "a1"), WD_JWT_OK);
    char p[256];
    path_in(p, sizeof(p), www, "slow.on");
    unlink(p);
    path_in(p, sizeof(p), www, "slow.hit");
    unlink(p);
    wd_jwt_verifier_free(v);
    srv_stop(&s);
}

static void refresher_start_refuses_configuration_errors(void **state)
{
    (void)state;
    struct wd_jwt_verifier *v = verifier_over(NULL);
    struct wd_jwks_refresher *r = NULL;
    char err[512];
    struct wd_jwks_http_opts o = {.url = "http://127.0.0.1:1/jwks.json"};
    assert_int_equal(wd_jwks_refresher_start(&o, v, &r, err, sizeof(err)), WD_EINVAL);
    assert_non_null(strstr(err, "https://"));
    o.url = "https://127.0.0.1:1/jwks.json";
    assert_int_equal(wd_jwks_refresher_start(&o, NULL, &r, err, sizeof(err)), WD_EINVAL);
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(wd_jwks_refresher_start(&o, v, &r, err, sizeof(err)), WD_ETLS);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    assert_null(r);
    /* NULL-safe */
    wd_jwks_refresher_stop(NULL);
    wd_jwks_refresher_kick(NULL);
    uint64_t ok = 7, failed = 7;
    wd_jwks_refresher_stats(NULL, &ok, &failed);
    assert_int_equal(ok, 0);
    assert_int_equal(failed, 0);
    assert_int_equal(wd_jwks_refresher_last_ok_ms(NULL), 0);
    wd_jwt_verifier_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(fetch_returns_a_key_set_that_verifies_tokens_signed_with_its_key,
                                  test_teardown),
        cmocka_unit_test_teardown(fetch_refuses_a_server_certificate_the_ca_did_not_sign,
                                  test_teardown),
        cmocka_unit_test_teardown(fetch_refuses_a_certificate_issued_for_another_host_name,
                                  test_teardown),
        cmocka_unit_test_teardown(fetch_refuses_plain_http_and_other_schemes_before_connecting,
                                  test_teardown),
        cmocka_unit_test_teardown(fetch_follows_https_redirects_but_never_to_http, test_teardown),
        cmocka_unit_test_teardown(fetch_reports_the_status_of_an_answer_other_than_200,
                                  test_teardown),
        cmocka_unit_test_teardown(fetch_aborts_a_body_over_max_bytes_with_or_without_content_length,
                                  test_teardown),
        cmocka_unit_test_teardown(fetch_reports_a_body_that_is_not_a_usable_jwks, test_teardown),
        cmocka_unit_test_teardown(fetch_errors_never_contain_the_url_password_or_query,
                                  test_teardown),
        cmocka_unit_test_teardown(refresher_installs_a_rotated_key_set_after_a_kick, test_teardown),
        cmocka_unit_test_teardown(refresher_keeps_the_last_good_key_set_when_a_refresh_fails,
                                  test_teardown),
        cmocka_unit_test_teardown(
            refresher_started_while_the_server_is_down_refuses_tokens_then_recovers, test_teardown),
        cmocka_unit_test_teardown(refresher_stop_returns_while_a_fetch_is_blocked_on_a_slow_server,
                                  test_teardown),
        cmocka_unit_test_teardown(refresher_start_refuses_configuration_errors, test_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
