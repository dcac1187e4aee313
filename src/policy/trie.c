/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trie.c: the topic index. Each rule topic is a path of levels from the root; a node
 * holds the (ascending) indices of the rules whose topic ends there. Edges:
 *
 *   literal level -> one hash table for the whole trie, keyed by (parent node, level)
 *   '+'           -> node->plus
 *   '#'           -> node->hash (its rules cover the node itself and everything below)
 *   template      -> node->tmpls (one edge per distinct template text; few per node)
 *
 * `eq` topics are not in the tree: a separate hash table maps the exact string to its
 * rules. Collecting the candidates for a request walks only the edges its levels can
 * take, so the cost depends on the topic's depth and the policy's shape, not on the
 * number of rules. Built once, then read-only: any number of threads may collect.
 *
 * An overlap trie (the deny rules that apply to subscribe) answers a different question
 * for wildcard subscriptions: which rule topics share a topic name with the request
 * filter. A request '+' must visit every child, so such a trie also lists each node's
 * literal children (the shared hash table cannot enumerate them), and a request '#'
 * must reach every rule below a node, so each node also lists the rules whose topics
 * pass through it. Only deny rules go there: they are usually few, and publish requests
 * and literal subscriptions never walk it.
 */
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"
#include "policy/policy_int.h"

uint64_t wd_trie__level_hash(const char *s, size_t n)
{
    /* word at a time: levels are short, and this runs once per request level */
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return h;
}

/* The slot hash of a literal edge: the level's hash mixed with its parent's id. */
static uint64_t edge_hash(uint32_t parent, uint64_t level_hash)
{
    uint64_t h = level_hash ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return h;
}

/* The hash of a whole topic from its level hashes (for eq topics). */
static uint64_t fold(uint64_t acc, uint64_t level_hash)
{
    acc = ((acc << 17) | (acc >> 47)) ^ level_hash;
    return acc * 0x9e3779b97f4a7c15ULL;
}

int wd_trie__split(const char *topic, size_t len, struct wd_req_level *lv, int max)
{
    int n = 0;
    size_t start = 0;
    for (;;) {
        const char *slash = memchr(topic + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - topic) : len;
        if (n == max)
            return -1;
        lv[n].s = topic + start;
        lv[n].len = end - start;
        lv[n].t = NULL;
        lv[n].h = wd_trie__level_hash(lv[n].s, lv[n].len);
        n++;
        if (!slash)
            return n;
        start = end + 1;
    }
}

/* Whole-topic hash of a string, split on '/' like a request (any number of levels). */
static uint64_t topic_hash(const char *s, size_t len)
{
    uint64_t acc = 0;
    size_t start = 0;
    for (;;) {
        const char *slash = memchr(s + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - s) : len;
        acc = fold(acc, wd_trie__level_hash(s + start, end - start));
        if (!slash)
            return acc;
        start = end + 1;
    }
}

static void bloom_add(uint64_t *bloom, uint64_t h)
{
    unsigned a = (unsigned)(h % WD_EQ_BLOOM_BITS), b = (unsigned)((h >> 20) % WD_EQ_BLOOM_BITS);
    bloom[a / 64] |= 1ULL << (a % 64);
    bloom[b / 64] |= 1ULL << (b % 64);
}

static bool bloom_has(const uint64_t *bloom, uint64_t h)
{
    unsigned a = (unsigned)(h % WD_EQ_BLOOM_BITS), b = (unsigned)((h >> 20) % WD_EQ_BLOOM_BITS);
    return (bloom[a / 64] >> (a % 64) & 1) && (bloom[b / 64] >> (b % 64) & 1);
}

static struct wd_tnode *new_node(struct wd_trie *t)
{
    if (!t->chunks || t->chunks->used == t->chunks->cap) {
        uint32_t cap = t->chunks ? t->chunks->cap * 2 : WD_TNODE_CHUNK_FIRST;
        if (cap > WD_TNODE_CHUNK)
            cap = WD_TNODE_CHUNK;
        struct wd_tnode_chunk *c = wd_calloc(1, sizeof *c + (size_t)cap * sizeof(struct wd_tnode));
        c->cap = cap;
        c->next = t->chunks;
        t->chunks = c;
    }
    struct wd_tnode *n = &t->chunks->nodes[t->chunks->used++];
    if (t->nnodes == t->capnodes) {
        t->capnodes = t->capnodes ? t->capnodes * 2 : 16;
        t->nodes = wd_realloc(t->nodes, t->capnodes * sizeof *t->nodes);
    }
    if (t->over_on && t->nnodes == t->capover) {
        uint32_t cap = t->capnodes;
        t->over = wd_realloc(t->over, cap * sizeof *t->over);
        memset(t->over + t->capover, 0, (cap - t->capover) * sizeof *t->over);
        t->capover = cap;
    }
    n->id = t->nnodes;
    t->nodes[t->nnodes++] = n;
    return n;
}

void wd_trie__init(struct wd_trie *t)
{
    memset(t, 0, sizeof *t);
    t->root = new_node(t);
}

void wd_trie__init_overlap(struct wd_trie *t)
{
    memset(t, 0, sizeof *t);
    t->over_on = true;
    t->root = new_node(t);
}

void wd_trie__free(struct wd_trie *t)
{
    for (uint32_t i = 0; t->over && i < t->nnodes; i++) {
        free(t->over[i].kids);
        free(t->over[i].sub);
    }
    free(t->over);
    for (uint32_t i = 0; i < t->nnodes; i++) {
        if (t->nodes[i]->caprules)
            free(t->nodes[i]->rules);
        free(t->nodes[i]->tmpls);
    }
    free(t->nodes);
    while (t->chunks) {
        struct wd_tnode_chunk *c = t->chunks->next;
        free(t->chunks);
        t->chunks = c;
    }
    free(t->lits);
    for (size_t i = 0; i < t->eqcap; i++)
        free(t->eqs[i].rules);
    free(t->eqs);
    free(t->eq_bloom);
    memset(t, 0, sizeof *t);
}

size_t wd_trie__memory(const struct wd_trie *t)
{
    size_t m = t->capnodes * sizeof(void *) + t->litcap * sizeof *t->lits +
               t->eqcap * sizeof *t->eqs + (t->eq_bloom ? WD_EQ_BLOOM_BITS / 8 : 0);
    for (uint32_t i = 0; i < t->nnodes; i++)
        m += sizeof(struct wd_tnode) + t->nodes[i]->caprules * sizeof(uint32_t) +
             t->nodes[i]->captmpls * sizeof(struct wd_tedge);
    for (size_t i = 0; i < t->eqcap; i++)
        m += t->eqs[i].caprules * sizeof(uint32_t);
    m += t->capover * sizeof *t->over;
    for (uint32_t i = 0; t->over && i < t->nnodes; i++)
        m += t->over[i].capkids * sizeof(struct wd_tkid) + t->over[i].capsub * sizeof(uint32_t);
    return m;
}

static void add_rule(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t rule)
{
    if (*n && (*v)[*n - 1] == rule)
        return; /* the same rule listing the same topic twice */
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 2;
        *v = wd_realloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = rule;
}

/* A node's rule list: the first rule is stored in the node itself (most nodes end one
 * rule), more go to the heap. */
static void node_add_rule(struct wd_tnode *n, uint32_t rule)
{
    if (n->nrules && n->rules[n->nrules - 1] == rule)
        return;
    if (n->nrules == 0) {
        n->one_rule = rule;
        n->rules = &n->one_rule;
        n->nrules = 1;
        return;
    }
    if (n->caprules == 0) {
        uint32_t *v = wd_malloc(4 * sizeof *v);
        v[0] = n->one_rule;
        n->rules = v;
        n->caprules = 4;
    } else if (n->nrules == n->caprules) {
        n->caprules *= 2;
        n->rules = wd_realloc(n->rules, n->caprules * sizeof *n->rules);
    }
    n->rules[n->nrules++] = rule;
}

static void lits_grow(struct wd_trie *t)
{
    size_t ncap = t->litcap ? t->litcap * 2 : 16; /* small first: per-client ACLs */
    struct wd_lit_slot *nl = aligned_alloc(64, ncap * sizeof *nl);
    if (!nl)
        abort();
    memset(nl, 0, ncap * sizeof *nl);
    for (size_t i = 0; i < t->litcap; i++) {
        if (!t->lits[i].child)
            continue;
        size_t j = t->lits[i].h & (ncap - 1);
        while (nl[j].child)
            j = (j + 1) & (ncap - 1);
        nl[j] = t->lits[i];
    }
    free(t->lits);
    t->lits = nl;
    t->litcap = ncap;
}

static bool slot_is(const struct wd_lit_slot *e, uint64_t h, uint32_t parent, const char *s,
                    size_t n)
{
    if (e->h != h || e->parent != parent || e->len != n)
        return false;
    return memcmp(n <= WD_LIT_INLINE ? e->key : e->s, s, n) == 0;
}

static struct wd_tnode *lit_find(const struct wd_trie *t, const struct wd_tnode *parent,
                                 const char *s, size_t n, uint64_t level_hash)
{
    if (!t->litcap)
        return NULL;
    uint64_t h = edge_hash(parent->id, level_hash);
    size_t j = h & (t->litcap - 1);
    while (t->lits[j].child) {
        if (slot_is(&t->lits[j], h, parent->id, s, n))
            return t->lits[j].child;
        j = (j + 1) & (t->litcap - 1);
    }
    return NULL;
}

static struct wd_tnode *lit_child(struct wd_trie *t, struct wd_tnode *parent, const char *s,
                                  size_t n)
{
    uint64_t lh = wd_trie__level_hash(s, n);
    struct wd_tnode *c = lit_find(t, parent, s, n, lh);
    if (c)
        return c;
    if ((t->nlits + 1) * 2 > t->litcap)
        lits_grow(t);
    c = new_node(t);
    uint64_t h = edge_hash(parent->id, lh);
    size_t j = h & (t->litcap - 1);
    while (t->lits[j].child)
        j = (j + 1) & (t->litcap - 1);
    struct wd_lit_slot *e = &t->lits[j];
    memset(e, 0, sizeof *e);
    e->h = h;
    e->parent = parent->id;
    e->len = (uint32_t)n;
    e->child = c;
    e->s = s;
    if (n <= WD_LIT_INLINE)
        memcpy(e->key, s, n);
    t->nlits++;
    if (t->over_on) {
        struct wd_tover *o = &t->over[parent->id];
        if (o->nkids == o->capkids) {
            o->capkids = o->capkids ? o->capkids * 2 : 2;
            o->kids = wd_realloc(o->kids, o->capkids * sizeof *o->kids);
        }
        o->kids[o->nkids++] = (struct wd_tkid){s, (uint32_t)n, c};
    }
    return c;
}

static struct wd_tnode *tmpl_child(struct wd_trie *t, struct wd_tnode *parent,
                                   const struct wd_tmpl *tm)
{
    for (uint32_t i = 0; i < parent->ntmpls; i++)
        if (parent->tmpls[i].t->len == tm->len &&
            memcmp(parent->tmpls[i].t->text, tm->text, tm->len) == 0)
            return parent->tmpls[i].child;
    if (parent->ntmpls == parent->captmpls) {
        parent->captmpls = parent->captmpls ? parent->captmpls * 2 : 2;
        parent->tmpls = wd_realloc(parent->tmpls, parent->captmpls * sizeof *parent->tmpls);
    }
    struct wd_tnode *c = new_node(t);
    parent->tmpls[parent->ntmpls++] = (struct wd_tedge){tm, c};
    return c;
}

static struct wd_eq_slot *eq_find(const struct wd_trie *t, const char *s, size_t n, uint64_t h)
{
    if (!t->eqcap)
        return NULL;
    size_t j = h & (t->eqcap - 1);
    while (t->eqs[j].s) {
        if (t->eqs[j].h == h && t->eqs[j].len == n && memcmp(t->eqs[j].s, s, n) == 0)
            return &t->eqs[j];
        j = (j + 1) & (t->eqcap - 1);
    }
    return NULL;
}

static void eq_add(struct wd_trie *t, const char *s, size_t n, uint32_t rule)
{
    uint64_t h = topic_hash(s, n);
    if (!t->eq_bloom)
        t->eq_bloom = wd_calloc(WD_EQ_BLOOM_BITS / 64, sizeof *t->eq_bloom);
    bloom_add(t->eq_bloom, h);
    struct wd_eq_slot *e = eq_find(t, s, n, h);
    if (!e) {
        if ((t->neqs + 1) * 2 > t->eqcap) {
            size_t ncap = t->eqcap ? t->eqcap * 2 : 64;
            struct wd_eq_slot *ne = wd_calloc(ncap, sizeof *ne);
            for (size_t i = 0; i < t->eqcap; i++) {
                if (!t->eqs[i].s)
                    continue;
                size_t j = t->eqs[i].h & (ncap - 1);
                while (ne[j].s)
                    j = (j + 1) & (ncap - 1);
                ne[j] = t->eqs[i];
            }
            free(t->eqs);
            t->eqs = ne;
            t->eqcap = ncap;
        }
        size_t j = h & (t->eqcap - 1);
        while (t->eqs[j].s)
            j = (j + 1) & (t->eqcap - 1);
        t->eqs[j] = (struct wd_eq_slot){.h = h, .s = s, .len = (uint32_t)n};
        t->neqs++;
        e = &t->eqs[j];
    }
    add_rule(&e->rules, &e->nrules, &e->caprules, rule);
}

void wd_trie__insert(struct wd_trie *t, const struct wd_ctopic *topic, uint32_t rule)
{
    if (topic->eq) {
        eq_add(t, topic->text, topic->len, rule);
        return;
    }
    struct wd_tnode *n = t->root;
    for (int i = 0; i < topic->nlv; i++) {
        const struct wd_level *l = &topic->lv[i];
        switch (l->kind) {
        case WD_LV_LITERAL:
            n = lit_child(t, n, l->s, l->len);
            break;
        case WD_LV_PLUS:
            if (!n->plus)
                n->plus = new_node(t);
            n = n->plus;
            break;
        case WD_LV_HASH:
            if (!n->hash)
                n->hash = new_node(t);
            n = n->hash;
            break;
        case WD_LV_TMPL:
            n = tmpl_child(t, n, l->t);
            break;
        }
        if (t->over_on) {
            struct wd_tover *o = &t->over[n->id];
            add_rule(&o->sub, &o->nsub, &o->capsub, rule);
        }
    }
    node_add_rule(n, rule);
}

struct walk {
    const struct wd_trie *t;
    const struct wd_req_level *lv;
    int nlv;
    const struct wd_client *client;
    struct wd_cand *cands;
    int max, n;
};

static void push_list(struct walk *w, const uint32_t *rules, uint32_t n)
{
    if (!n)
        return;
    if (w->n < w->max)
        w->cands[w->n] = (struct wd_cand){rules, n, 0};
    w->n++; /* counted past max so the caller learns about the overflow */
}

static void push(struct walk *w, const struct wd_tnode *node)
{
    if (node)
        push_list(w, node->rules, node->nrules);
}

static bool is_level(const struct wd_req_level *l, char c)
{
    return !l->t && l->len == 1 && l->s[0] == c;
}

static void walk(struct walk *w, const struct wd_tnode *node, int i)
{
    /* a first-level wildcard or placeholder never covers a $-topic */
    bool dollar = i == 0 && w->nlv > 0 && !w->lv[0].t && w->lv[0].len > 0 && w->lv[0].s[0] == '$';
    if (node->hash && !dollar)
        push(w, node->hash);
    if (i == w->nlv) {
        push(w, node);
        return;
    }
    const struct wd_req_level *l = &w->lv[i];
    if (is_level(l, '#'))
        return; /* only a rule '#' covers a request '#' */
    if (is_level(l, '+')) {
        if (node->plus)
            walk(w, node->plus, i + 1);
        return;
    }
    if (l->t) {
        /* a rule template level (shadow analysis): covered by '+' or the same template */
        if (node->plus && !(i == 0 && false))
            walk(w, node->plus, i + 1);
        for (uint32_t k = 0; k < node->ntmpls; k++)
            if (node->tmpls[k].t->len == l->t->len &&
                memcmp(node->tmpls[k].t->text, l->t->text, l->t->len) == 0)
                walk(w, node->tmpls[k].child, i + 1);
        return;
    }
    const struct wd_tnode *c = lit_find(w->t, node, l->s, l->len, l->h);
    if (c)
        walk(w, c, i + 1);
    if (dollar)
        return;
    if (node->plus)
        walk(w, node->plus, i + 1);
    if (w->client) {
        for (uint32_t k = 0; k < node->ntmpls; k++)
            if (wd_policy__tmpl_render_eq(node->tmpls[k].t, w->client, l->s, l->len))
                walk(w, node->tmpls[k].child, i + 1);
    }
}

/* ---- overlap (wildcard subscriptions against deny rules) ---- */

static void push_sub(struct walk *w, const struct wd_tnode *node)
{
    const struct wd_tover *o = &w->t->over[node->id];
    push_list(w, o->sub, o->nsub);
}

static void walk_overlap(struct walk *w, const struct wd_tnode *node, int i);

/* A child under a request wildcard at level i: all of it for '#', else level i + 1. */
static void visit_child(struct walk *w, const struct wd_tnode *child, int i, bool hash)
{
    if (hash)
        push_sub(w, child);
    else
        walk_overlap(w, child, i + 1);
}

static void walk_overlap(struct walk *w, const struct wd_tnode *node, int i)
{
    const struct wd_tover *o = &w->t->over[node->id];
    /* a '$' first level is reached by the same literal only, never by a wildcard */
    bool dollar = i == 0 && w->lv[0].len > 0 && w->lv[0].s[0] == '$';
    if (node->hash && !dollar)
        push(w, node->hash);
    if (i == w->nlv) {
        push(w, node);
        return;
    }
    const struct wd_req_level *l = &w->lv[i];
    bool hash = is_level(l, '#');
    if (hash && i > 0) {
        push_sub(w, node); /* the node's own rules (a/# receives a) and all below */
        return;
    }
    if (hash || is_level(l, '+')) {
        /* every child; at the first level not the '$' ones */
        for (uint32_t k = 0; k < o->nkids; k++) {
            if (i == 0 && o->kids[k].len > 0 && o->kids[k].s[0] == '$')
                continue;
            visit_child(w, o->kids[k].child, i, hash);
        }
        /* '+' children and placeholders (whatever their value: fail closed); the '#'
         * child was pushed above */
        if (node->plus)
            visit_child(w, node->plus, i, hash);
        for (uint32_t k = 0; k < node->ntmpls; k++)
            visit_child(w, node->tmpls[k].child, i, hash);
        return;
    }
    const struct wd_tnode *c = lit_find(w->t, node, l->s, l->len, l->h);
    if (c)
        walk_overlap(w, c, i + 1);
    if (dollar)
        return;
    if (node->plus)
        walk_overlap(w, node->plus, i + 1);
    if (w->client) {
        for (uint32_t k = 0; k < node->ntmpls; k++)
            if (wd_policy__tmpl_render_eq(node->tmpls[k].t, w->client, l->s, l->len))
                walk_overlap(w, node->tmpls[k].child, i + 1);
    }
}

int wd_trie__collect_overlap(const struct wd_trie *t, const struct wd_req_level *lv, int nlv,
                             const struct wd_client *client, struct wd_cand *cands, int max)
{
    struct walk w = {t, lv, nlv, client, cands, max, 0};
    walk_overlap(&w, t->root, 0);
    return w.n > max ? -1 : w.n;
}

int wd_trie__collect(const struct wd_trie *t, const struct wd_req_level *lv, int nlv,
                     const char *full, size_t fulllen, const struct wd_client *client,
                     struct wd_cand *cands, int max)
{
    struct walk w = {t, lv, nlv, client, cands, max, 0};
    walk(&w, t->root, 0);
    struct wd_eq_slot *e = NULL;
    if (t->neqs && full) {
        uint64_t h = 0;
        for (int i = 0; i < nlv; i++)
            h = fold(h, lv[i].h);
        if (bloom_has(t->eq_bloom, h))
            e = eq_find(t, full, fulllen, h);
    }
    if (e) {
        if (w.n < max)
            cands[w.n] = (struct wd_cand){e->rules, e->nrules, 0};
        w.n++;
    }
    return w.n > max ? -1 : w.n;
}
