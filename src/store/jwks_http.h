/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jwks_http.h: a JWK Set fetched over HTTPS and kept fresh for a JWT verifier (EMQX's
 * `use_jwks` / `endpoint` / `refresh_interval`, emqx-auth-formats.md section 3.2). The only
 * user of libcurl. docs/internals/jwt.md ("JWKS over HTTPS") has the long form.
 *
 * One fetch is: GET the URL over HTTPS only (TLS 1.2 or later, peer certificate and host
 * name always verified, against `ca_file` or the system store), following at most 3
 * redirects and only to https:// URLs, each hop verified the same way; the final status
 * must be 200; the body is bounded by `max_bytes` (the transfer is aborted as soon as it is
 * exceeded, or before it starts when Content-Length says so) and parsed with
 * wd_jwt_keyset_from_jwks(). libcurl honours the usual https_proxy / no_proxy variables.
 *
 * The refresher keeps the last good key set when a fetch fails: a failure is logged and
 * retried after retry_ms, and never empties the verifier. A body identical to the last
 * good one is not swapped in, so the verifier's generation (part of the verdict cache key)
 * only moves when the keys do.
 *
 * Error text (err) is one line: curl's error (which names the host at most), "HTTP <code>",
 * or the JSON error. It never contains the URL's user, password or query, nor the body.
 */
#ifndef WD_JWKS_HTTP_H
#define WD_JWKS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "store/jwt.h"

#define WD_JWKS_TIMEOUT_MS_DEFAULT 5000u
#define WD_JWKS_REFRESH_MS_DEFAULT 300000u
#define WD_JWKS_RETRY_MS_DEFAULT 10000u
#define WD_JWKS_REDIRECTS_MAX 3

/* Options; the strings are copied by wd_jwks_refresher_start (borrowed for the call).
 * A zero field means its default. */
struct wd_jwks_http_opts {
    const char *url;     /* https:// only (http:// and every other scheme are refused) */
    const char *ca_file; /* PEM bundle to verify the server; NULL: the system store */
    unsigned timeout_ms; /* the whole request, redirects included; default 5000 */
    unsigned refresh_ms; /* after a successful fetch; default 300000 */
    unsigned retry_ms;   /* after a failed fetch; default 10000, capped at refresh_ms */
    size_t max_bytes;    /* body limit; default and maximum WD_JWT_JWKS_MAX */
};

/* One fetch, synchronous (up to timeout_ms). Returns WD_OK with *out (one reference, for the
 * caller) and err "" or the warning about skipped keys; otherwise *out is NULL and err says
 * why: WD_EINVAL (no URL, not https://), WD_ETLS (ca_file unreadable or unusable),
 * WD_ETIMEDOUT, WD_ETOOBIG (body over max_bytes), WD_EBACKEND (connection, TLS
 * verification, redirects, HTTP status other than 200), or the codes of
 * wd_jwt_keyset_from_jwks (WD_ESYNTAX, WD_ENOENT). Thread-safe. */
int wd_jwks_http_fetch(const struct wd_jwks_http_opts *o, struct wd_jwt_keyset **out, char *err,
                       size_t errcap);

struct wd_jwks_refresher;

/* Fetches once, synchronously, then starts a thread that refetches every refresh_ms and
 * installs each new set with wd_jwt_verifier_set_keyset(v). On a failed fetch the current
 * set is kept, a warning is logged and the fetch is retried after retry_ms.
 *
 * A failed FIRST fetch does not fail start (the daemon must not refuse to start because
 * the IdP is briefly down): it is logged as an error, `v` keeps whatever set it had (none
 * for a verifier built with a NULL set: every token then reads WD_JWT_NO_KEYS) and the
 * thread retries after retry_ms. Returns WD_OK with *out and err "" or the reason the
 * first fetch failed; WD_EINVAL (no URL or verifier, not https://) or WD_ETLS (ca_file not
 * readable) with the reason in err and *out NULL: configuration errors, not outages.
 *
 * `v` is borrowed: it must outlive the refresher (stop it before wd_jwt_verifier_free). */
int wd_jwks_refresher_start(const struct wd_jwks_http_opts *o, const struct wd_jwt_verifier *v,
                            struct wd_jwks_refresher **out, char *err, size_t errcap);

/* Stops and joins the thread, aborting a fetch in flight (libcurl's progress callback sees
 * the stop flag within about a second; at worst the fetch ends at timeout_ms), then frees
 * the refresher. The verifier keeps its current key set. NULL-safe. */
void wd_jwks_refresher_stop(struct wd_jwks_refresher *r);

/* Fetches so far, the synchronous first one included: successful (a parsed key set, changed
 * or not) and failed. Either pointer may be NULL. */
void wd_jwks_refresher_stats(const struct wd_jwks_refresher *r, uint64_t *ok, uint64_t *failed);

/* Wall-clock time of the last successful fetch, Unix milliseconds; 0 if none yet. */
int64_t wd_jwks_refresher_last_ok_ms(const struct wd_jwks_refresher *r);

/* Asks for a fetch now (e.g. on an unknown kid) without waiting for it. Rate-limited: a
 * fetch starts no sooner than retry_ms after the previous one started, so kicks arriving
 * faster are merged into one (deferred, never lost; a kick during a fetch schedules one
 * more). Thread-safe, never blocks on the network. NULL-safe. */
void wd_jwks_refresher_kick(struct wd_jwks_refresher *r);

#endif
