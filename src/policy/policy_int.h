/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy_int.h: the compiled representation shared by compile.c, trie.c and match.c.
 * Not for use outside src/policy/.
 */
#ifndef WD_POLICY_INT_H
#define WD_POLICY_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/arena.h"
#include "policy/cidr.h"
#include "policy/policy.h"
#include "policy/topic.h"

/* ---- conditions ---- */

struct wd_cond {
    enum wd_ast_cond_kind kind;
    enum wd_field field;
    const struct wd_cond *l, *r;
    /* EQ / IN on string fields: sorted, for bsearch */
    const char **strs;
    size_t *lens;
    size_t nstrs;
    /* EQ / IN on string fields: the values with placeholders (`clientid = "${username}"`),
     * rendered for each request; a value that is absent or empty never matches */
    const struct wd_tmpl **tmpls;
    size_t ntmpls;
    /* EQ / IN on port */
    long *nums;
    size_t nnums;
    /* RE */
    pcre2_code *re;
    /* IN on peer */
    struct wd_cidr *cidrs;
    size_t ncidrs;
    const char *text; /* canonical source text, for explain */
};

/* ---- topics ---- */

enum wd_var {
    WD_VAR_USERNAME,
    WD_VAR_CLIENTID,
    WD_VAR_CN,
    WD_VAR_CLAIM, /* a JWT claim: wd_client.claim() */
};

struct wd_tmpl_part {
    bool var;
    enum wd_var v;
    const char *s; /* literal text, or the claim name */
    size_t len;
};

struct wd_tmpl {
    struct wd_tmpl_part *parts;
    size_t nparts;
    const char *text; /* the level as written, for identity and messages */
    size_t len;
};

struct wd_ctopic {
    bool eq;
    const char *text;
    size_t len;
    struct wd_level *lv;
    int nlv;
};

/* ---- rules ---- */

struct wd_rule {
    uint32_t idx;
    unsigned line;
    bool is_source;
    enum wd_source source;
    enum wd_decision perm;
    unsigned actions;
    bool has_qos;
    unsigned qos_mask;
    int retain;
    struct wd_ctopic *topics;
    size_t ntopics;
    const struct wd_cond *when;
};

/* ---- trie ---- */

struct wd_tnode;

struct wd_tedge {
    const struct wd_tmpl *t;
    struct wd_tnode *child;
};

struct wd_tnode {
    uint32_t id;
    uint32_t one_rule; /* storage for the common single-rule list (rules points here) */
    struct wd_tnode *plus, *hash;
    struct wd_tedge *tmpls;
    uint32_t ntmpls, captmpls;
    uint32_t *rules;           /* ascending rule indices that end here */
    uint32_t nrules, caprules; /* caprules 0: rules is one_rule or NULL */
};

/* Nodes are allocated in chunks, in insertion order: the nodes of one device's topics
 * sit together in memory, so a request touches fewer cache lines. Chunks start small and
 * double up to WD_TNODE_CHUNK nodes: a per-client store ACL of three rules must not cost
 * a 64 KiB chunk (sessions hold thousands of them). */
#define WD_TNODE_CHUNK 1024
#define WD_TNODE_CHUNK_FIRST 8
struct wd_tnode_chunk {
    struct wd_tnode_chunk *next;
    uint32_t used, cap;
    struct wd_tnode nodes[];
};

/* One literal edge: 64 bytes, cache-line aligned, short keys stored inline so a lookup
 * touches one line (the benchmark showed lookups waiting on the arena's key text). */
#define WD_LIT_INLINE 32
struct wd_lit_slot {
    uint64_t h;
    uint32_t parent; /* parent node id */
    uint32_t len;
    struct wd_tnode *child;
    const char *s; /* the key, for keys longer than WD_LIT_INLINE */
    char key[WD_LIT_INLINE];
};

struct wd_eq_slot {
    uint64_t h;
    const char *s;
    uint32_t len;
    uint32_t *rules;
    uint32_t nrules, caprules;
};

#define WD_EQ_BLOOM_BITS 8192

/* What an overlap trie keeps per node beyond struct wd_tnode (indexed by node id): its
 * literal children, which a subscription's '+' must all visit, and every rule whose topic
 * passes through or ends at it, which a subscription's '#' reaches at once. */
struct wd_tkid {
    const char *s;
    uint32_t len;
    struct wd_tnode *child;
};

struct wd_tover {
    struct wd_tkid *kids;
    uint32_t nkids, capkids;
    uint32_t *sub; /* ascending rule indices */
    uint32_t nsub, capsub;
};

struct wd_trie {
    struct wd_tnode *root;
    uint64_t *eq_bloom; /* WD_EQ_BLOOM_BITS bits, with the first eq topic: skips the eq probe */
    struct wd_tnode **nodes; /* all nodes, for freeing their lists */
    uint32_t nnodes, capnodes;
    struct wd_tnode_chunk *chunks;
    struct wd_lit_slot *lits;
    size_t nlits, litcap; /* litcap: power of two */
    struct wd_eq_slot *eqs;
    size_t neqs, eqcap;
    bool over_on;          /* an overlap trie (wd_trie__init_overlap) */
    struct wd_tover *over; /* over_on: one per node */
    uint32_t capover;
};

struct wd_policy {
    atomic_long refs;
    unsigned long generation;
    struct wd_arena arena;

    struct wd_policy_user *users; /* sorted by name */
    size_t nusers;
    struct wd_policy_step *steps;
    size_t nsteps;
    enum wd_decision authn_default;
    unsigned authn_default_line;

    struct wd_rule *rules;
    size_t nrules;
    uint32_t *sources; /* indices of `rules redis|jwt` splice points, ascending */
    size_t nsources;
    enum wd_decision authz_default; /* NOMATCH for store policies (wd_policy_compile_rules) */
    unsigned authz_default_line;
    bool linear;         /* a small store rule set: scanned, no trie (saves ~3 KB each) */
    bool uses_claims;    /* a rule topic has a ${claim.X} */
    bool uses_superuser; /* a rule or source condition tests `superuser` */

    struct wd_trie trie;
    /* the non-eq topics of the deny rules that apply to subscribe, for wildcard
     * subscriptions (deny rules decide by overlap, see topic.h); has_deny_sub: it is
     * initialised and not empty */
    struct wd_trie deny_sub;
    bool has_deny_sub;

    pcre2_code **res; /* every compiled regex, for freeing */
    size_t nres, capres;
};

/* Store rule sets up to this many rules are scanned instead of put in a trie. */
#define WD_POLICY_LINEAR_MAX 32

/* trie.c */
void wd_trie__init(struct wd_trie *t);
/* A trie for wd_trie__collect_overlap: also keeps each node's literal children and the
 * rules below it. Non-eq topics only. */
void wd_trie__init_overlap(struct wd_trie *t);
void wd_trie__free(struct wd_trie *t);
void wd_trie__insert(struct wd_trie *t, const struct wd_ctopic *topic, uint32_t rule);
size_t wd_trie__memory(const struct wd_trie *t);

/* A request topic split into levels; a level may be a template (only when the "request"
 * is itself a rule topic, for shadow analysis). */
struct wd_req_level {
    const char *s;
    size_t len;
    const struct wd_tmpl *t;
    uint64_t h; /* wd_trie__level_hash(s, len), computed once per request level */
};

/* The hash of one level's text, independent of where it sits in the trie. */
uint64_t wd_trie__level_hash(const char *s, size_t n);
/* Splits `topic` into request levels with their hashes. Returns the count or -1 when there
 * are more than max levels. */
int wd_trie__split(const char *topic, size_t len, struct wd_req_level *lv, int max);

/* Collects the rule lists whose topics cover the request. Returns the number of lists
 * (at most max), or -1 if there were more than max. full is the request's whole text, for
 * the eq topics; NULL: eq topics are not looked up. */
struct wd_cand {
    const uint32_t *rules;
    uint32_t n;
    uint32_t pos;
};
int wd_trie__collect(const struct wd_trie *t, const struct wd_req_level *lv, int nlv,
                     const char *full, size_t fulllen, const struct wd_client *client,
                     struct wd_cand *cands, int max);

/* Collects, from an overlap trie, the rule lists whose topics overlap the request (a
 * subscription filter: rule levels that match one of its topic names; see topic.h).
 * Placeholder levels against a '+' or '#' always overlap. Same return as collect. */
int wd_trie__collect_overlap(const struct wd_trie *t, const struct wd_req_level *lv, int nlv,
                             const struct wd_client *client, struct wd_cand *cands, int max);

/* match.c */
/* A topic level: a value containing '/', '+' or '#' never matches (it would widen). */
bool wd_policy__tmpl_render_eq(const struct wd_tmpl *t, const struct wd_client *c,
                               const char *level, size_t len);

#endif
