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
 */
#include <stdlib.h>
#include <string.h>

#include "core/wd.h"
#include "policy/policy_int.h"

static uint64_t hash_level(uint32_t parent, const char *s, size_t n)
{
    /* FNV-1a over the parent id and the bytes, then a final mix */
    uint64_t h = 1469598103934665603ULL ^ parent;
    h *= 1099511628211ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static struct wd_tnode *new_node(struct wd_trie *t)
{
    struct wd_tnode *n = wd_calloc(1, sizeof *n);
    if (t->nnodes == t->capnodes) {
        t->capnodes = t->capnodes ? t->capnodes * 2 : 64;
        t->nodes = wd_realloc(t->nodes, t->capnodes * sizeof *t->nodes);
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

void wd_trie__free(struct wd_trie *t)
{
    for (uint32_t i = 0; i < t->nnodes; i++) {
        free(t->nodes[i]->rules);
        free(t->nodes[i]->tmpls);
        free(t->nodes[i]);
    }
    free(t->nodes);
    free(t->lits);
    for (size_t i = 0; i < t->eqcap; i++)
        free(t->eqs[i].rules);
    free(t->eqs);
    memset(t, 0, sizeof *t);
}

size_t wd_trie__memory(const struct wd_trie *t)
{
    size_t m = t->capnodes * sizeof(void *) + t->litcap * sizeof *t->lits +
               t->eqcap * sizeof *t->eqs;
    for (uint32_t i = 0; i < t->nnodes; i++)
        m += sizeof(struct wd_tnode) + t->nodes[i]->caprules * sizeof(uint32_t) +
             t->nodes[i]->captmpls * sizeof(struct wd_tedge);
    for (size_t i = 0; i < t->eqcap; i++)
        m += t->eqs[i].caprules * sizeof(uint32_t);
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

static void lits_grow(struct wd_trie *t)
{
    size_t ncap = t->litcap ? t->litcap * 2 : 1024;
    struct wd_lit_slot *nl = wd_calloc(ncap, sizeof *nl);
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

static struct wd_tnode *lit_find(const struct wd_trie *t, const struct wd_tnode *parent,
                                 const char *s, size_t n)
{
    if (!t->litcap)
        return NULL;
    uint64_t h = hash_level(parent->id, s, n);
    size_t j = h & (t->litcap - 1);
    while (t->lits[j].child) {
        const struct wd_lit_slot *e = &t->lits[j];
        if (e->h == h && e->parent == parent && e->len == n && memcmp(e->s, s, n) == 0)
            return e->child;
        j = (j + 1) & (t->litcap - 1);
    }
    return NULL;
}

static struct wd_tnode *lit_child(struct wd_trie *t, struct wd_tnode *parent, const char *s,
                                  size_t n)
{
    struct wd_tnode *c = lit_find(t, parent, s, n);
    if (c)
        return c;
    if ((t->nlits + 1) * 2 > t->litcap)
        lits_grow(t);
    c = new_node(t);
    uint64_t h = hash_level(parent->id, s, n);
    size_t j = h & (t->litcap - 1);
    while (t->lits[j].child)
        j = (j + 1) & (t->litcap - 1);
    t->lits[j] = (struct wd_lit_slot){h, parent, s, (uint32_t)n, c};
    t->nlits++;
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
    uint64_t h = hash_level(UINT32_MAX, s, n);
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
    }
    add_rule(&n->rules, &n->nrules, &n->caprules, rule);
}

struct walk {
    const struct wd_trie *t;
    const struct wd_req_level *lv;
    int nlv;
    const struct wd_client *client;
    struct wd_cand *cands;
    int max, n;
};

static void push(struct walk *w, const struct wd_tnode *node)
{
    if (!node || !node->nrules)
        return;
    if (w->n < w->max)
        w->cands[w->n] = (struct wd_cand){node->rules, node->nrules, 0};
    w->n++; /* counted past max so the caller learns about the overflow */
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
    const struct wd_tnode *c = lit_find(w->t, node, l->s, l->len);
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

int wd_trie__collect(const struct wd_trie *t, const struct wd_req_level *lv, int nlv,
                     const char *full, size_t fulllen, const struct wd_client *client,
                     struct wd_cand *cands, int max)
{
    struct walk w = {t, lv, nlv, client, cands, max, 0};
    walk(&w, t->root, 0);
    struct wd_eq_slot *e = eq_find(t, full, fulllen, hash_level(UINT32_MAX, full, fulllen));
    if (e) {
        if (w.n < max)
            cands[w.n] = (struct wd_cand){e->rules, e->nrules, 0};
        w.n++;
    }
    return w.n > max ? -1 : w.n;
}
