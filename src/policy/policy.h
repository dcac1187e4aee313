/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.h: a compiled policy (docs/policy.md) and the questions it answers.
 *
 * Pipeline: lex.c -> parse.c (AST) -> compile.c (this object) -> trie.c / match.c.
 * A compiled policy is immutable and refcounted: any number of threads may evaluate it
 * concurrently; a reload compiles a new one off to the side and swaps the pointer, and
 * the old one is freed when its last user releases it.
 *
 * The policy answers authorization itself. For authentication it exposes the chain and
 * the static users; the engine runs the chain because password checks belong to the
 * store layer.
 */
#ifndef WD_POLICY_H
#define WD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/request.h"
#include "core/wd.h"
#include "policy/ast.h"
#include "policy/diag.h"

#define WD_POLICY_MAX_BYTES (16u << 20)
#define WD_POLICY_MAX_RULES 1000000

struct wd_policy;
struct wd_cond;

/* Compiles policy text. Diagnostics (errors and warnings) go to diags, which the caller
 * initialized with the file name and source. Returns WD_OK with *out set (refcount 1)
 * when there are no errors, else WD_ESYNTAX and *out = NULL. */
int wd_policy_compile(const char *src, size_t len, struct wd_diags *diags, struct wd_policy **out);

/* Checks a user's stored secret for a layer that knows password schemes (the engine).
 * Returns 0 if fine, 1 for a warning, -1 for an error, with the message in why. */
typedef int (*wd_policy_secret_check_fn)(const char *secret, char *why, size_t cap);

/* wd_policy_compile, also checking every user's secret with check (may be NULL), so the
 * secrets' problems are reported in the same pass as everything else. */
int wd_policy_compile_ex(const char *src, size_t len, struct wd_diags *diags,
                         wd_policy_secret_check_fn check, struct wd_policy **out);

/* Reads FILE (at most WD_POLICY_MAX_BYTES) and compiles it. *diags is initialized here
 * (the caller cleans it up); I/O errors become a diagnostic and WD_EIO. */
int wd_policy_load_file(const char *path, struct wd_diags *diags, wd_policy_secret_check_fn check,
                        struct wd_policy **out, char **src_out);

struct wd_policy *wd_policy_get(struct wd_policy *p);
void wd_policy_release(struct wd_policy *p);

/* ---- authentication: the chain and the users, for the engine ---- */

struct wd_policy_user {
    const char *name;
    const char *secret;
    bool superuser;
    unsigned line;
};

struct wd_policy_step {
    enum wd_authn_step kind;
    enum wd_decision decision;
    unsigned line;
    const struct wd_cond *when; /* NULL: always */
};

size_t wd_policy_nsteps(const struct wd_policy *p);
const struct wd_policy_step *wd_policy_step(const struct wd_policy *p, size_t i);
/* The default decision of the chain (deny when the file has no `authn default`) and the
 * line that says so (0 when implicit). */
enum wd_decision wd_policy_authn_default(const struct wd_policy *p, unsigned *line);
const struct wd_policy_user *wd_policy_user_find(const struct wd_policy *p, const char *name);
size_t wd_policy_nusers(const struct wd_policy *p);
const struct wd_policy_user *wd_policy_user_at(const struct wd_policy *p, size_t i);
/* Whether step s's condition holds for client c: 1 yes (or no condition), 0 no, -1 cannot
 * be evaluated (a regex hit its limit: callers deny). A comparison with a value the client
 * does not have (a placeholder with no value) holds for a step that denies (`authn deny
 * when`, `authn anonymous deny`: 1), not for one that can only admit (`authn allow when`,
 * `authn anonymous allow`: 0), and for a credential check (`authn users|redis|jwt`), which
 * can do both, it is WD_POLICY_WHEN_DENY_ONLY: the step runs and only its DENY applies (an
 * ALLOW is no answer: the chain goes on). A missing value never lets a client in, nor keeps
 * it out of a deny (nor out of a password check). */
#define WD_POLICY_WHEN_DENY_ONLY 2
int wd_policy_step_when(const struct wd_policy *p, const struct wd_policy_step *s,
                        const struct wd_client *c);

/* ---- authorization ---- */

struct wd_policy_result {
    enum wd_decision decision;
    unsigned line; /* the deciding rule's line; 0 when the implicit default decided */
    bool by_default;
    bool by_source; /* a rule source (`rules redis|jwt`) decided, at its splice point */
    bool bad_topic; /* the request's topic is not a valid MQTT name/filter: DENY, line 0 */
};

/* The engine's answer for a `rules redis|jwt` splice point. eval returns 1 when the source
 * decided (out->decision set to ALLOW or DENY; the policy fills line and by_default), 0
 * when it has nothing to say (evaluation goes on with the next rule), and may set
 * out->decision = DENY and return 1 on a backend failure it wants to fail closed on.
 * out arrives with decision DENY; after a 1, anything but ALLOW counts as DENY, and any
 * return value other than 0 and 1 is a DENY too (fail closed). eval runs on the calling
 * thread, only when the request reaches the splice point in rule order (an earlier rule
 * that matches decides without asking), and after the splice point's `when` held or was
 * unknown (a value the client does not have: then only a DENY applies). */
struct wd_policy_sources {
    int (*eval)(void *ctx, enum wd_source src, const struct wd_authz_req *req,
                struct wd_policy_result *out);
    void *ctx;
};

/* First-match evaluation through the topic trie. src (may be NULL: sources never match,
 * and their `when` is not evaluated) answers for the rule sources at their position in
 * file order: a splice point is a rule; its `when` is evaluated first (false: skipped;
 * cannot be evaluated: DENY at its line, as for any rule); then src->eval (with a `when`
 * that is unknown, only the source's DENY applies, never its ALLOW). */
void wd_policy_authorize_src(const struct wd_policy *p, const struct wd_authz_req *req,
                             const struct wd_policy_sources *src, struct wd_policy_result *out);
/* wd_policy_authorize_src with src == NULL. */
void wd_policy_authorize(const struct wd_policy *p, const struct wd_authz_req *req,
                         struct wd_policy_result *out);

/* The same decision by scanning every rule in order: the reference semantics (tests
 * check the two agree), and the baseline the benchmark compares with. */
void wd_policy_authorize_linear_src(const struct wd_policy *p, const struct wd_authz_req *req,
                                    const struct wd_policy_sources *src,
                                    struct wd_policy_result *out);
void wd_policy_authorize_linear(const struct wd_policy *p, const struct wd_authz_req *req,
                                struct wd_policy_result *out);

/* Explains a decision: calls fn once per rule before the deciding one (and for the
 * deciding one) with its line and a short reason. A rule source says whether it decided
 * or why not ("condition is false", "source has no matching entry", or, with src NULL,
 * that no store is consulted here). */
typedef void (*wd_policy_explain_fn)(void *ctx, unsigned line, bool decided, const char *why);
void wd_policy_explain_authorize_src(const struct wd_policy *p, const struct wd_authz_req *req,
                                     const struct wd_policy_sources *src, wd_policy_explain_fn fn,
                                     void *ctx, struct wd_policy_result *out);
void wd_policy_explain_authorize(const struct wd_policy *p, const struct wd_authz_req *req,
                                 wd_policy_explain_fn fn, void *ctx, struct wd_policy_result *out);

/* What the policy needs from the engine, so that stores and claims are set up (and
 * fetched per request) only when used. */
bool wd_policy_has_source(const struct wd_policy *p, enum wd_source s); /* `rules s` */
bool wd_policy_uses_claims(const struct wd_policy *p); /* any ${claim.X} in any rule topic */
/* any `superuser` in any condition (the engine keeps sessions only when something reads them) */
bool wd_policy_uses_superuser(const struct wd_policy *p);
/* An `authn K` step; for WD_STEP_DEFAULT: whether the file has an `authn default`. */
bool wd_policy_has_authn_step(const struct wd_policy *p, enum wd_authn_step k);

/* ---- rules from a credential store ---- */

/* A rule from a credential store (a Redis ACL entry, a JWT ACL rule). */
struct wd_policy_rule_in {
    enum wd_decision perm;     /* WD_DECISION_ALLOW or WD_DECISION_DENY */
    unsigned actions;          /* WD_ACT_PUBLISH | WD_ACT_SUBSCRIBE, non-zero */
    const char *const *topics; /* NUL-terminated topic filters as stored */
    size_t ntopics;
    bool eq;           /* literal topics: no wildcards, no placeholders */
    unsigned qos_mask; /* bit n = QoS n; 7 (or 0) = any */
    int retain;        /* -1 any, 0, 1 (ignored for a subscribe-only rule, as in EMQX) */
};

/* Called once per skipped rule, in input order: index into the input, a static or short
 * reason (never echoing more than 64 bytes of the topic; valid UTF-8 without control
 * characters). The reason is only valid during the call. */
typedef void (*wd_policy_skip_fn)(void *ud, size_t index, const char *why);

/* Compiles store rules into an immutable refcounted policy with no users and no authn
 * steps, rules in input order, and NO default: a request no rule matches gives
 * decision WD_DECISION_NOMATCH with by_default = true. A rule that does not compile
 * (bad topic syntax, bad placeholder, empty topic, too many levels...) is skipped and
 * reported through skip (may be NULL); the rest still compile. Never emits warnings
 * (no shadow/duplicate analysis). Returns WD_OK with *out set (even when every rule
 * was skipped: an empty policy that answers NOMATCH).
 *
 * Rule i gets line i + 1 (wd_policy_result.line names the input rule that decided).
 * Topics: at most WD_TOPIC_MAX_LEN (65535) bytes, strict UTF-8; placeholders as in
 * policies (${username}, ${clientid}, ${cn} alias ${cert_common_name}, ${claim.NAME};
 * `$${` is a literal `${`), none in eq topics. QoS and retain restrictions behave as the
 * policy's `qos`/`retain`: EMQX sends neither through ExHook, so an allow rule with one
 * never matches its requests and a deny rule always does. Rules are borrowed only during
 * the call. Returns WD_ETOOBIG (and *out = NULL) for more than WD_POLICY_MAX_RULES
 * rules. */
int wd_policy_compile_rules(const struct wd_policy_rule_in *rules, size_t n, wd_policy_skip_fn skip,
                            void *ud, struct wd_policy **out);

/* Sizes, for logs and benchmarks. */
size_t wd_policy_nrules(const struct wd_policy *p);
size_t wd_policy_memory(const struct wd_policy *p);
/* Which compiled policy file this is: 1, 2, ... in compile order across the process (a
 * reload serves a higher one). Store rules (wd_policy_compile_rules) have 0. */
unsigned long wd_policy_generation(const struct wd_policy *p);

#endif
