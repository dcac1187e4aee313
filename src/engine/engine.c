/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine.c: see engine.h. The static user table is a sorted array searched with bsearch:
 * built once, immutable, shared by all workers without locks.
 */
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "store/passwd.h"

struct user {
    char *name;
    char *secret;
};

struct wd_engine {
    struct user *users;
    size_t nusers;
    enum wd_decision authn_default;
    enum wd_decision authz_default;
};

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const struct user *)a)->name, ((const struct user *)b)->name);
}

struct wd_engine *wd_engine_new(const struct wd_config *cfg, char **errors)
{
    *errors = NULL;
    struct wd_engine *e = wd_calloc(1, sizeof *e);
    e->authn_default = cfg->authn_default;
    e->authz_default = cfg->authz_default;
    e->users = wd_calloc(cfg->nusers, sizeof *e->users);
    size_t errlen = 0;
    for (size_t i = 0; i < cfg->nusers; i++) {
        const struct wd_config_user *u = &cfg->users[i];
        char why[160];
        if (wd_passwd_check_format(u->secret, why, sizeof why) != WD_OK) {
            char line[512];
            int n = snprintf(line, sizeof line, "%s%s: user '%s': %s", errlen ? "\n" : "",
                             u->origin, u->name, why);
            *errors = wd_realloc(*errors, errlen + (size_t)n + 1);
            memcpy(*errors + errlen, line, (size_t)n + 1);
            errlen += (size_t)n;
            continue;
        }
        if (wd_passwd_is_plaintext(u->secret))
            wd_log_warn("engine", "%s: user '%s' has a plain: password; store a hash instead",
                        u->origin, u->name);
        e->users[e->nusers].name = wd_strdup(u->name);
        e->users[e->nusers].secret = wd_strdup(u->secret);
        e->nusers++;
    }
    if (*errors) {
        wd_engine_free(e);
        return NULL;
    }
    qsort(e->users, e->nusers, sizeof *e->users, user_cmp);
    return e;
}

void wd_engine_free(struct wd_engine *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nusers; i++) {
        free(e->users[i].name);
        memset(e->users[i].secret, 0, strlen(e->users[i].secret));
        free(e->users[i].secret);
    }
    free(e->users);
    free(e);
}

static void count(enum wd_decision d, enum wd_metric allow, enum wd_metric deny,
                  enum wd_metric nomatch)
{
    wd_metrics_inc(d == WD_DECISION_ALLOW ? allow : d == WD_DECISION_DENY ? deny : nomatch);
}

int wd_engine_authenticate(const struct wd_engine *e, const struct wd_authn_req *req,
                           struct wd_verdict *out)
{
    int rc = WD_OK;
    out->decision = e->authn_default;
    out->reason = "no static user matched: authn_default";
    if (req->client.username[0] != '\0') {
        struct user key = {.name = (char *)req->client.username};
        const struct user *u = bsearch(&key, e->users, e->nusers, sizeof *e->users, user_cmp);
        if (u) {
            bool ok = false;
            rc = wd_passwd_verify(u->secret, req->password, req->password_len, &ok);
            if (rc != WD_OK) {
                /* unreachable for formats checked at load; fail closed all the same */
                out->decision = WD_DECISION_DENY;
                out->reason = "stored secret unusable";
            } else if (ok) {
                out->decision = WD_DECISION_ALLOW;
                out->reason = "static user: password matches";
            } else {
                out->decision = WD_DECISION_DENY;
                out->reason = "static user: password does not match";
            }
        }
    }
    count(out->decision, WD_M_AUTHN_ALLOW, WD_M_AUTHN_DENY, WD_M_AUTHN_NOMATCH);
    return rc;
}

int wd_engine_authorize(const struct wd_engine *e, const struct wd_authz_req *req,
                        struct wd_verdict *out)
{
    (void)req;
    out->decision = e->authz_default;
    out->reason = "no rule matched: authz_default";
    count(out->decision, WD_M_AUTHZ_ALLOW, WD_M_AUTHZ_DENY, WD_M_AUTHZ_NOMATCH);
    return WD_OK;
}
