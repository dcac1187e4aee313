/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwks_http.c: JWKS over HTTPS and its refresh thread (see jwks_http.h for the contract).
 * The only file that includes <curl/curl.h>; no CURL handle leaves it.
 *
 * Decisions worth knowing:
 * - One easy handle per fetch, nothing shared between fetches (no connection reuse): a
 *   fetch every few minutes gains nothing from a pool, and a fresh handle is trivially
 *   thread-safe. curl_global_init runs once (pthread_once) and is never undone.
 * - Only https, for the request and for redirects (CURLOPT_PROTOCOLS_STR and
 *   CURLOPT_REDIR_PROTOCOLS_STR), checked up front too so the error is ours, not curl's.
 *   Redirects: at most WD_JWKS_REDIRECTS_MAX, each hop verified like the first; only the
 *   final response's body is kept (the header callback resets it at each status line).
 * - With ca_file the system store is NOT consulted (CURLOPT_CAPATH cleared): a private IdP
 *   is trusted through its CA only.
 * - The body buffer is allocated once at max_bytes + 1 and wiped before it is freed: a JWKS
 *   may carry `oct` (HMAC) keys, which are secrets, and a growing buffer would leave
 *   unwiped copies behind in freed memory.
 * - The refresh thread waits on a condition variable on CLOCK_MONOTONIC (wall-clock jumps
 *   do not move refreshes), so stop and kick are immediate; a fetch in flight sees the stop
 *   flag through libcurl's progress callback, which libcurl calls about once a second
 *   even while nothing arrives.
 * - A body byte-identical to the last good one (SHA-256) is not swapped in: the verifier's
 *   generation keys the verdict cache, which a no-op refresh every few minutes would
 *   otherwise empty.
 * - Logs name the URL without user, password, query or fragment.
 */
#include "store/jwks_http.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/log.h"
#include "core/wd.h"

#ifndef WD_VERSION
#define WD_VERSION "0"
#endif

#define MOD "jwks"
#define DIGEST_LEN 32 /* SHA-256 */

#define seterr wd_seterr

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- options ---- */

/* The options with defaults applied; strings borrowed (fetch) or owned (refresher). */
struct conf {
    const char *url;
    const char *ca_file;
    unsigned timeout_ms, refresh_ms, retry_ms;
    size_t max_bytes;
};

static int conf_resolve(const struct wd_jwks_http_opts *o, struct conf *c, char *err, size_t errcap)
{
    memset(c, 0, sizeof(*c));
    if (!o || !o->url || !o->url[0]) {
        seterr(err, errcap, "jwks: no URL");
        return WD_EINVAL;
    }
    if (strncasecmp(o->url, "https://", 8) != 0 || !o->url[8]) {
        seterr(err, errcap,
               "jwks: the URL must be https:// (plain http and other schemes "
               "are refused)");
        return WD_EINVAL;
    }
    c->url = o->url;
    c->ca_file = o->ca_file && o->ca_file[0] ? o->ca_file : NULL;
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : WD_JWKS_TIMEOUT_MS_DEFAULT;
    c->refresh_ms = o->refresh_ms ? o->refresh_ms : WD_JWKS_REFRESH_MS_DEFAULT;
    c->retry_ms = o->retry_ms ? o->retry_ms : WD_JWKS_RETRY_MS_DEFAULT;
    if (c->retry_ms > c->refresh_ms)
        c->retry_ms = c->refresh_ms;
    c->max_bytes = o->max_bytes && o->max_bytes < WD_JWT_JWKS_MAX ? o->max_bytes : WD_JWT_JWKS_MAX;
    return WD_OK;
}

/* "https://host:port/path" without user:password@, ?query and #fragment, for logs */
static void url_for_log(const char *url, char *out, size_t cap)
{
    const char *auth = url + 8; /* after "https://", checked by conf_resolve */
    size_t alen = strcspn(auth, "/?#");
    const char *host = auth;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            host = p + 1;
    const char *path = auth + alen;
    size_t plen = strcspn(path, "?#");
    snprintf(out, cap, "https://%.*s%.*s%s", (int)(auth + alen - host), host, (int)plen, path,
             path[plen] ? "?..." : "");
}

/* True when err contains the URL's password or query (never expected from curl; checked
 * so that the promise "no secrets in err" does not rest on curl's wording). */
static bool err_leaks_url_secret(const char *err, const char *url)
{
    const char *auth = url + 8;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        size_t n = colon ? (size_t)(at - colon - 1) : 0;
        if (n > 0 && memmem(err, strlen(err), colon + 1, n))
            return true;
    }
    const char *q = auth + alen + strcspn(auth + alen, "?#");
    return q[0] && q[1] && strstr(err, q + 1) != NULL;
}

/* ---- one fetch ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct xfer {
    char *body; /* max + 1 bytes, allocated up front (wiped before free) */
    size_t len, max;
    bool too_big;
    const atomic_bool *cancel; /* NULL: cannot be cancelled */
};

/* Each response (a redirect hop, a 1xx) starts with a status line; only the last one's
 * body is the JWKS. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        OPENSSL_cleanse(x->body, x->len);
        x->len = 0;
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (len > x->max - x->len) {
        x->too_big = true;
        return 0; /* != len: libcurl aborts the transfer with CURLE_WRITE_ERROR */
    }
    memcpy(x->body + x->len, p, len);
    x->len += len;
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const struct xfer *x = ud;
    return x->cancel && atomic_load(x->cancel) ? 1 : 0;
}

/* curl's text for `cc` (its error buffer when it has one), one line, no URL secrets */
static void curl_reason(CURLcode cc, const char *errbuf, const char *url, char *err, size_t errcap)
{
    seterr(err, errcap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
    if (err && errcap) {
        size_t n = strlen(err);
        while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == '\r' || err[n - 1] == ' '))
            err[--n] = '\0';
        if (err_leaks_url_secret(err, url))
            seterr(err, errcap, "%s", curl_easy_strerror(cc));
    }
}

static int map_curl_error(CURLcode cc, const struct xfer *x, const char *errbuf,
                          const struct conf *c, char *err, size_t errcap)
{
    char why[CURL_ERROR_SIZE + 64];
    curl_reason(cc, errbuf, c->url, why, sizeof(why));
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        seterr(err, errcap, "timed out after %u ms (%s)", c->timeout_ms, why);
        return WD_ETIMEDOUT;
    case CURLE_FILESIZE_EXCEEDED:
        seterr(err, errcap, "response body over %zu bytes (Content-Length)", c->max_bytes);
        return WD_ETOOBIG;
    case CURLE_WRITE_ERROR:
        if (x->too_big) {
            seterr(err, errcap, "response body over %zu bytes (transfer aborted)", c->max_bytes);
            return WD_ETOOBIG;
        }
        break;
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        seterr(err, errcap, "%s", why);
        return WD_ETLS;
    case CURLE_ABORTED_BY_CALLBACK:
        seterr(err, errcap, "fetch cancelled (stopping)");
        return WD_EBACKEND;
    case CURLE_UNSUPPORTED_PROTOCOL:
        seterr(err, errcap, "%s (only https:// is fetched or followed)", why);
        return WD_EBACKEND;
    default:
        break;
    }
    seterr(err, errcap, "%s", why);
    return WD_EBACKEND;
}

#define SETOPT(h, opt, val)                                                                        \
    do {                                                                                           \
        if ((cc = curl_easy_setopt(h, opt, val)) != CURLE_OK)                                      \
            goto setopt_failed;                                                                    \
    } while (0)

/* GET c->url into a key set. `digest` (DIGEST_LEN bytes, may be NULL) receives the SHA-256
 * of the body on success. */
static int fetch(const struct conf *c, const atomic_bool *cancel, struct wd_jwt_keyset **out,
                 unsigned char *digest, char *err, size_t errcap)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        seterr(err, errcap, "libcurl: %s", curl_easy_strerror(curl_init_rc));
        return WD_EBACKEND;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        seterr(err, errcap, "libcurl: cannot create a handle");
        return WD_EBACKEND;
    }
    struct xfer x = {.body = wd_malloc(c->max_bytes + 1), .max = c->max_bytes, .cancel = cancel};
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    CURLcode cc;
    int rc = WD_EBACKEND;
    if (!hdrs)
        abort(); /* OOM (CONVENTIONS) */

    SETOPT(h, CURLOPT_URL, c->url);
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "https");
    SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 1L);
    SETOPT(h, CURLOPT_MAXREDIRS, (long)WD_JWKS_REDIRECTS_MAX);
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->ca_file) {
        SETOPT(h, CURLOPT_CAINFO, c->ca_file);
        SETOPT(h, CURLOPT_CAPATH, (char *)NULL);
    }
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_bytes);
    SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(h, CURLOPT_HEADERDATA, &x);
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(h, CURLOPT_WRITEDATA, &x);
    if (cancel) {
        SETOPT(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        SETOPT(h, CURLOPT_XFERINFODATA, &x);
        SETOPT(h, CURLOPT_NOPROGRESS, 0L);
    }
    SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(h, CURLOPT_USERAGENT, "warden/" WD_VERSION);
    SETOPT(h, CURLOPT_HTTPHEADER, hdrs); /* EMQX's default JWKS request header */

    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        rc = map_curl_error(cc, &x, errbuf, c, err, errcap);
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        seterr(err, errcap, "HTTP status %ld (want 200)", status);
        rc = WD_EBACKEND;
        goto out;
    }
    x.body[x.len] = '\0';
    rc = wd_jwt_keyset_from_jwks(x.body, x.len, out, err, errcap);
    if (rc == WD_OK && digest) {
        unsigned int dl = 0;
        if (!EVP_Digest(x.body, x.len, digest, &dl, EVP_sha256(), NULL) || dl != DIGEST_LEN)
            abort(); /* SHA-256 of memory fails only without memory */
    }
    goto out;

setopt_failed:
    seterr(err, errcap, "libcurl: %s", curl_easy_strerror(cc));
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    OPENSSL_cleanse(x.body, x.len);
    free(x.body);
    return rc;
}

int wd_jwks_http_fetch(const struct wd_jwks_http_opts *o, struct wd_jwt_keyset **out, char *err,
                       size_t errcap)
{
    *out = NULL;
    struct conf c;
    int rc = conf_resolve(o, &c, err, errcap);
    if (rc != WD_OK)
        return rc;
    return fetch(&c, NULL, out, NULL, err, errcap);
}

/* ---- the refresher ---- */

struct wd_jwks_refresher {
    struct conf c; /* url and ca_file owned */
    char log_url[256];
    const struct wd_jwt_verifier *v;
    pthread_t thread;

    pthread_mutex_t mu;
    pthread_cond_t cv;   /* CLOCK_MONOTONIC */
    atomic_bool stop;    /* also read by libcurl's progress callback */
    bool fetching;       /* under mu */
    bool kicked;         /* under mu: a kick arrived during a fetch */
    uint64_t next_ms;    /* under mu: monotonic time of the next fetch */
    uint64_t started_ms; /* under mu: when the last fetch started (monotonic) */

    _Atomic uint64_t n_ok, n_failed;
    _Atomic int64_t last_ok_wall_ms;

    /* the refresh thread's own state (the first fetch runs before the thread exists) */
    bool have_keys;
    unsigned char digest[DIGEST_LEN];
    size_t n_keys;
    uint64_t last_ok_mono;
    uint64_t fail_streak;
    char warning[512]; /* the last skipped-keys warning, logged only when it changes */
};

/* Records one fetch's outcome: counts, swaps the set in, logs. Consumes ks. */
static void outcome(struct wd_jwks_refresher *r, int rc, struct wd_jwt_keyset *ks,
                    const unsigned char *digest, const char *err)
{
    if (rc != WD_OK) {
        atomic_fetch_add(&r->n_failed, 1);
        r->fail_streak++;
        if (!r->have_keys)
            wd_log_error(MOD,
                         "%s: %s; no key set fetched yet: every JWT is refused (%s) until a "
                         "fetch succeeds; retrying every %u ms",
                         r->log_url, err, wd_jwt_status_str(WD_JWT_NO_KEYS), r->c.retry_ms);
        else
            wd_log_warn(MOD,
                        "%s: refresh failed: %s; keeping the last good key set (%zu key(s), "
                        "fetched %llu s ago); retrying in %u ms",
                        r->log_url, err, r->n_keys,
                        (unsigned long long)((mono_ms() - r->last_ok_mono) / 1000), r->c.retry_ms);
        return;
    }
    atomic_fetch_add(&r->n_ok, 1);
    atomic_store(&r->last_ok_wall_ms, wall_ms());
    r->last_ok_mono = mono_ms();
    if (r->fail_streak)
        wd_log_info(MOD, "%s: fetched again after %llu failed attempt(s)", r->log_url,
                    (unsigned long long)r->fail_streak);
    r->fail_streak = 0;
    if (err[0] && strcmp(err, r->warning) != 0)
        wd_log_warn(MOD, "%s: %s", r->log_url, err);
    snprintf(r->warning, sizeof(r->warning), "%s", err);
    if (r->have_keys && memcmp(digest, r->digest, DIGEST_LEN) == 0) {
        wd_log_debug(MOD, "%s: key set unchanged", r->log_url);
        wd_jwt_keyset_release(ks);
        return;
    }
    wd_jwt_verifier_set_keyset(r->v, ks);
    r->n_keys = wd_jwt_keyset_count(ks);
    wd_jwt_keyset_release(ks);
    memcpy(r->digest, digest, DIGEST_LEN);
    bool changed = r->have_keys;
    r->have_keys = true;
    wd_log_info(MOD, "%s: %s %zu key(s) (key set generation %llu)", r->log_url,
                changed ? "key set changed, now" : "loaded", r->n_keys,
                (unsigned long long)wd_jwt_verifier_generation(r->v));
}

static void deadline_ts(uint64_t ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

static void *refresh_main(void *arg)
{
    struct wd_jwks_refresher *r = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are main's business */

    pthread_mutex_lock(&r->mu);
    while (!atomic_load(&r->stop)) {
        uint64_t now = mono_ms();
        if (now < r->next_ms) {
            struct timespec ts;
            deadline_ts(r->next_ms, &ts);
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            continue;
        }
        r->fetching = true;
        r->started_ms = now;
        pthread_mutex_unlock(&r->mu);

        struct wd_jwt_keyset *ks = NULL;
        unsigned char digest[DIGEST_LEN];
        char err[512] = "";
        int rc = fetch(&r->c, &r->stop, &ks, digest, err, sizeof(err));
        bool stopping = atomic_load(&r->stop);
        if (stopping && rc != WD_OK) /* aborted by stop: neither counted nor logged */
            wd_jwt_keyset_release(ks);
        else
            outcome(r, rc, ks, digest, err);

        pthread_mutex_lock(&r->mu);
        r->fetching = false;
        r->next_ms = mono_ms() + (rc == WD_OK ? r->c.refresh_ms : r->c.retry_ms);
        if (r->kicked) {
            r->kicked = false;
            uint64_t k = r->started_ms + r->c.retry_ms;
            if (k < r->next_ms)
                r->next_ms = k;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void refresher_free(struct wd_jwks_refresher *r)
{
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free((char *)r->c.url);
    free((char *)r->c.ca_file);
    free(r);
}

int wd_jwks_refresher_start(const struct wd_jwks_http_opts *o, const struct wd_jwt_verifier *v,
                            struct wd_jwks_refresher **out, char *err, size_t errcap)
{
    *out = NULL;
    struct conf c;
    int rc = conf_resolve(o, &c, err, errcap);
    if (rc != WD_OK)
        return rc;
    if (!v) {
        seterr(err, errcap, "jwks: no verifier");
        return WD_EINVAL;
    }
    if (c.ca_file && access(c.ca_file, R_OK) != 0) {
        seterr(err, errcap, "jwks: CA file %s: %s", c.ca_file, strerror(errno));
        return WD_ETLS;
    }

    struct wd_jwks_refresher *r = wd_calloc(1, sizeof(*r));
    r->c = c;
    r->c.url = wd_strdup(c.url);
    r->c.ca_file = c.ca_file ? wd_strdup(c.ca_file) : NULL;
    url_for_log(r->c.url, r->log_url, sizeof(r->log_url));
    r->v = v;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&r->stop, false);
    atomic_init(&r->n_ok, 0);
    atomic_init(&r->n_failed, 0);
    atomic_init(&r->last_ok_wall_ms, 0);

    /* the first fetch, synchronous: a failure is logged, not fatal */
    struct wd_jwt_keyset *ks = NULL;
    unsigned char digest[DIGEST_LEN];
    char why[512] = "";
    r->started_ms = mono_ms();
    rc = fetch(&r->c, NULL, &ks, digest, why, sizeof(why));
    outcome(r, rc, ks, digest, why);
    r->next_ms = mono_ms() + (rc == WD_OK ? r->c.refresh_ms : r->c.retry_ms);

    int e = pthread_create(&r->thread, NULL, refresh_main, r);
    if (e != 0) {
        seterr(err, errcap, "jwks: cannot start the refresh thread: %s", strerror(e));
        refresher_free(r);
        return WD_EBACKEND;
    }
    pthread_setname_np(r->thread, "wd-jwks");
    seterr(err, errcap, "%s", rc == WD_OK ? "" : why);
    *out = r;
    return WD_OK;
}

void wd_jwks_refresher_stop(struct wd_jwks_refresher *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->stop, true);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    refresher_free(r);
}

void wd_jwks_refresher_stats(const struct wd_jwks_refresher *r, uint64_t *ok, uint64_t *failed)
{
    if (ok)
        *ok = r ? atomic_load(&r->n_ok) : 0;
    if (failed)
        *failed = r ? atomic_load(&r->n_failed) : 0;
}

int64_t wd_jwks_refresher_last_ok_ms(const struct wd_jwks_refresher *r)
{
    return r ? atomic_load(&r->last_ok_wall_ms) : 0;
}

void wd_jwks_refresher_kick(struct wd_jwks_refresher *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->fetching) {
        r->kicked = true;
    } else {
        uint64_t k = r->started_ms + r->c.retry_ms;
        if (k < r->next_ms) {
            r->next_ms = k;
            pthread_cond_signal(&r->cv);
        }
    }
    pthread_mutex_unlock(&r->mu);
}
