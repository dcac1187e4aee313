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
/* 1 true, 0 false, -1 cannot be evaluated (a regex hit its limit: callers deny). */
int wd_policy_cond_eval(const struct wd_policy *p, const struct wd_cond *c,
                        const struct wd_client *client);

/* ---- authorization ---- */

struct wd_policy_result {
    enum wd_decision decision;
    unsigned line; /* the deciding rule's line; 0 when the implicit default decided */
    bool by_default;
};

/* First-match evaluation through the topic trie. */
void wd_policy_authorize(const struct wd_policy *p, const struct wd_authz_req *req,
                         struct wd_policy_result *out);

/* The same decision by scanning every rule in order: the reference semantics (tests
 * check the two agree), and the baseline the benchmark compares with. */
void wd_policy_authorize_linear(const struct wd_policy *p, const struct wd_authz_req *req,
                                struct wd_policy_result *out);

/* Explains a decision: calls fn once per rule before the deciding one (and for the
 * deciding one) with its line and a short reason. */
typedef void (*wd_policy_explain_fn)(void *ctx, unsigned line, bool decided, const char *why);
void wd_policy_explain_authorize(const struct wd_policy *p, const struct wd_authz_req *req,
                                 wd_policy_explain_fn fn, void *ctx, struct wd_policy_result *out);

/* Sizes, for logs and benchmarks. */
size_t wd_policy_nrules(const struct wd_policy *p);
size_t wd_policy_memory(const struct wd_policy *p);
unsigned long wd_policy_generation(const struct wd_policy *p);

#endif
