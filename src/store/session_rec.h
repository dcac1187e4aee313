/* SPDX-License-Identifier: Apache-2.0 */
/*
 * session_rec.h: a client's session as it is stored in Redis for the other replicas
 * (docs/sessions.md "Shared sessions"), and the codec between that text and a plain
 * struct. One JSON object (jansson), written by warden and read back under limits:
 *
 *   {"v":1,"user":"ops","host":"10.0.0.7","port":5000,"src":"jwt","su":false,
 *    "end":1712345678901,"exp":1712345999,
 *    "jwt":{"acl":"v2","rules":[[1,1,0,7,-1,"a/#"],[0,3,0,7,-1,"b/#"]],
 *           "claims":[["tenant","t1"],["org.dept","d7"]]}}
 *
 * user/host/port bind the session to the connection that made it; src is the step that
 * allowed it (static, redis, jwt, other); su the superuser flag; end the Unix time in ms
 * at which it ends (its Redis TTL ends then too); exp the token's expiry (Unix s, 0: none).
 * "jwt" (only with src jwt) holds what policies read of the token: the ACL claim as the
 * verifier parsed it (format none|v1|v2|invalid; each rule [allow 0/1, actions 1 pub 2 sub
 * 3 both, eq 0/1, QoS mask 1..7, retain -1/0/1, topic]) and the flattened claims in their
 * order (name, text). Never the token, its signature or a password.
 *
 * Decoding trusts nothing: at most WD_SESSION_REC_MAX bytes, nesting at most 4 deep
 * (checked before jansson parses), duplicate keys refused, every field checked for type
 * and range, unknown fields refused, "su" refused for src other, "jwt" required with src
 * jwt and refused otherwise; strings without NUL, bounded (user 65535, host 255, topic
 * 65535, claim name 255, claim value 65535), rules <= WD_JWT_ACL_RULES_MAX, claims <=
 * WD_JWT_CLAIMS_MAX. Anything else is WD_EDECODE with the reason in err.
 */
#ifndef WD_STORE_SESSION_REC_H
#define WD_STORE_SESSION_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "store/jwt.h"

#define WD_SESSION_REC_MAX (256 * 1024) /* bytes of one stored session */

/* Which authentication step allowed the login that made a session. */
enum wd_session_source {
    WD_SESSION_STATIC = 1,
    WD_SESSION_REDIS,
    WD_SESSION_JWT,
    WD_SESSION_OTHER, /* anonymous allow, `allow when`, authn default allow */
};

struct wd_session_rec {
    char *username;
    char *peerhost;
    uint32_t peerport;
    enum wd_session_source source;
    bool superuser;
    int64_t end_ms; /* Unix ms */
    int64_t exp;    /* Unix s; 0: none */
    bool has_jwt;
    /* with has_jwt: acl_format, acl/n_acl and the claims (wd_jwt_result_claim_at); the
     * other fields are unused (exp and superuser are the record's own) */
    struct wd_jwt_result jwt;
};

/* Appends r's text to out. The record is borrowed (the encoder only reads it). WD_OK;
 * WD_ETOOBIG when the text would exceed WD_SESSION_REC_MAX, WD_EINVAL when a string is not
 * UTF-8 (nothing is appended then). */
int wd_session_rec_encode(const struct wd_session_rec *r, struct wd_buf *out);

/* Parses len bytes of text into *out (zeroed first; owns its memory on WD_OK: release with
 * wd_session_rec_cleanup). WD_OK, or WD_EDECODE / WD_ETOOBIG with the reason in err (errcap
 * may be 0) and *out empty. */
int wd_session_rec_decode(const char *text, size_t len, struct wd_session_rec *out, char *err,
                          size_t errcap);

/* Frees what a decode made. NULL-safe, idempotent. Not for a record the caller filled with
 * borrowed pointers for encoding. */
void wd_session_rec_cleanup(struct wd_session_rec *r);

#endif
