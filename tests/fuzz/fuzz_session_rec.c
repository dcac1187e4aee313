/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_session_rec: the shared-session record decoder (src/store/session_rec.c) on
 * arbitrary bytes, as a value planted in Redis under the session prefix by anyone who can
 * write there (docs/sessions.md "Shared sessions"), then what a replica does with a record
 * it accepted: the JWT part is made an ident (its ACL rules compiled into a policy) and
 * asked to authorize a few requests.
 *
 * Input: the value's bytes. Invariants besides no crash, no leak and no sanitizer report: a
 * record is accepted whole or not at all (on a refusal every field is zero); an accepted
 * one never has a superuser without a credential step, has a JWT part exactly when its
 * source is jwt, and survives encode -> decode -> encode unchanged (a replica re-sharing a
 * session it read writes what it read).
 */
#include <stdbool.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/request.h"
#include "core/wd.h"
#include "engine/jwtident.h"
#include "fuzz.h"
#include "store/session_rec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wd_log_set_level(WD_LOG_ERROR);
    return 0;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static void use_jwt(struct wd_jwt_result *res)
{
    static const char *const topics[] = {"devices/dev-1/up", "a/b", "#", "+/x", "$SYS/x"};
    struct wd_jwt_ident *j = NULL;
    if (wd_jwt_ident_new(res, "fuzz", 0, &j) != WD_OK)
        return; /* released by the call */
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        struct wd_authz_req req = {
            .action = i % 2 ? WD_ACTION_SUBSCRIBE : WD_ACTION_PUBLISH,
            .topic = topics[i],
            .topic_len = strlen(topics[i]),
            .qos = 1,
            .retain = 0,
            .client = {.node = "n",
                       .clientid = "dev-1",
                       .username = "alice",
                       .peerhost = "127.0.0.1",
                       .protocol = "mqtt",
                       .mountpoint = "",
                       .cn = "",
                       .dn = ""},
        };
        struct wd_policy_result out;
        const char *why = NULL;
        int rc = wd_jwt_ident_authorize(j, &req, &out, &why);
        FUZZ_CHECK(rc == 0 || rc == 1, "authorize returned %d", rc);
    }
    wd_jwt_ident_release(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wd_session_rec rec;
    char err[256];
    int rc = wd_session_rec_decode((const char *)data, size, &rec, err, sizeof err);
    if (rc != WD_OK) {
        FUZZ_CHECK(rc == WD_EDECODE || rc == WD_ETOOBIG, "decode returned %d", rc);
        FUZZ_CHECK(all_zero(&rec, sizeof rec), "a refused record left fields set");
        FUZZ_CHECK(err[0], "a refusal without a reason");
        return 0;
    }
    FUZZ_CHECK(!(rec.superuser && rec.source == WD_SESSION_OTHER), "superuser with src other");
    FUZZ_CHECK(rec.has_jwt == (rec.source == WD_SESSION_JWT), "jwt part and src disagree");
    FUZZ_CHECK(rec.username && rec.peerhost, "accepted without user or host");

    struct wd_buf a = {0}, b = {0};
    int er = wd_session_rec_encode(&rec, &a);
    FUZZ_CHECK(er == WD_OK, "an accepted record does not encode: %d", er);
    struct wd_session_rec again;
    rc = wd_session_rec_decode(a.s, a.len, &again, err, sizeof err);
    FUZZ_CHECK(rc == WD_OK, "its own encoding is refused: %s", err);
    FUZZ_CHECK(wd_session_rec_encode(&again, &b) == WD_OK, "the re-read record does not encode");
    FUZZ_CHECK(a.len == b.len && memcmp(a.s, b.s, a.len) == 0, "encode/decode is not stable");
    FUZZ_CHECK(again.superuser == rec.superuser && again.source == rec.source &&
                   again.peerport == rec.peerport && strcmp(again.username, rec.username) == 0,
               "fields changed on the round trip");
    wd_session_rec_cleanup(&again);
    wd_buf_free(&a);
    wd_buf_free(&b);

    if (rec.has_jwt) {
        use_jwt(&rec.jwt);
        memset(&rec.jwt, 0, sizeof rec.jwt); /* taken by the ident */
        rec.has_jwt = false;
    }
    wd_session_rec_cleanup(&rec);
    return 0;
}
