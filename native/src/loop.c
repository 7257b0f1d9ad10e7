/* The speculative loop, step for step as src/edge_mtp/runtime/loop.py `generate` (docs/loop.md: the greedy
 * and speculative-sampling rules; docs/sampling.md: the order of uniforms). */
#include "edge_mtp.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int emtp_fail(emtp_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void emtp_backend_destroy(emtp_backend *b) {
    if (b && b->ops && b->ops->destroy) b->ops->destroy(b->self);
    if (b) {
        b->ops = NULL;
        b->self = NULL;
    }
}

emtp_views emtp_drafter_views(int prev_first, int prev_last, int length, int window, int mode) {
    emtp_views v;
    if (mode == EMTP_KV_CLEAN || prev_first == prev_last) { /* after a one-token forward: views.py */
        int last = length - 2;
        v.sliding_lo = last - window > 0 ? last - window : 0;
        v.sliding_hi = last;
        v.full_lo = 0;
        v.full_hi = last;
        return v;
    }
    v.full_lo = 0;
    v.full_hi = prev_last < length - 1 ? prev_last : length - 1;
    int start = prev_first - (window - 1) > 0 ? prev_first - (window - 1) : 0;
    int end = prev_last < start + length - 1 ? prev_last : start + length - 1;
    v.sliding_lo = start > end - window ? start : end - window;
    v.sliding_hi = end;
    return v;
}

static double now_ms(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Python rounds timings to 3 decimals. */
static double round3(double ms) {
    double r = ms * 1000.0;
    return (double)(long long)(r + (r >= 0 ? 0.5 : -0.5)) / 1000.0;
}

/* Whether any of row[0..n) ranks above a threshold that is not NaN: compares with no early exit, which
 * compilers vectorize. */
static int any_above(const float *row, int n, float threshold) {
    int any = 0;
    for (int i = 0; i < n; i++) any |= row[i] > threshold;
    return any;
}

/* One pass over the row; ids are visited in order and only a strictly higher rank moves an entry down, so the
 * smaller id stays first among equals. At a 262144-token vocabulary the k selection passes this replaces
 * cost a few ms a round. Once the list is full, a block of ids none of which ranks above its last entry is
 * skipped whole (one vector compare per id instead of a branch per id: 0.27 -> 0.03 ms at E2B's vocabulary);
 * while that entry is NaN every id is visited, since any number ranks above NaN. */
void emtp_top_logits(const float *row, int n, emtp_round *r) {
    enum { BLOCK = 64 };
    int k = n < EMTP_TOP_LOGITS ? n : EMTP_TOP_LOGITS;
    r->n_top = 0;
    for (int i = 0; i < n; i++) {
        if (r->n_top == k && i % BLOCK == 0 && i + BLOCK <= n && !isnan(r->top_values[k - 1]) &&
            !any_above(row + i, BLOCK, r->top_values[k - 1])) {
            i += BLOCK - 1;
            continue;
        }
        if (r->n_top == k && !emtp_ranks_above(row[i], r->top_values[k - 1])) continue;
        int at = r->n_top < k ? r->n_top : k - 1;
        for (; at > 0 && emtp_ranks_above(row[i], r->top_values[at - 1]); at--) {
            r->top_ids[at] = r->top_ids[at - 1];
            r->top_values[at] = r->top_values[at - 1];
        }
        r->top_ids[at] = i;
        r->top_values[at] = row[i];
        if (r->n_top < k) r->n_top++;
    }
}

static int is_stop(const emtp_backend *b, int32_t t) {
    for (int i = 0; i < b->n_stop; i++)
        if (b->stop_ids[i] == t) return 1;
    return 0;
}

/* Workspace for one generate() call. */
typedef struct loop_ws {
    float *logits;  /* (K+1) * V (also the prefill's row) */
    float *hidden;  /* (K+1) * H */
    float *dlogits; /* V */
    float *carry, *carry2; /* H */
    double *dists;  /* K * V: q distributions of the drafts (sampling) */
    double *p, *res; /* V */
    double *rates;   /* K: the draft policy's estimates */
    emtp_sampler sampler;
    int has_sampler;
    emtp_draft_state policy;
    int has_policy;
} loop_ws;

static void ws_free(loop_ws *w) {
    free(w->logits);
    free(w->hidden);
    free(w->dlogits);
    free(w->carry);
    free(w->carry2);
    free(w->dists);
    free(w->p);
    free(w->res);
    free(w->rates);
    if (w->has_sampler) emtp_sampler_free(&w->sampler);
    if (w->has_policy) emtp_draft_state_free(&w->policy);
}

static int push_round(emtp_generation *g, emtp_round *r, const int32_t *drafts, int nd, const int32_t *target,
                      int nt, const int32_t *emitted, int ne, const double *rates, int n_rates, emtp_error *err) {
    if (g->n_rounds == g->cap_rounds) {
        int cap = g->cap_rounds ? 2 * g->cap_rounds : 16;
        emtp_round *grown = realloc(g->rounds, sizeof *grown * (size_t)cap);
        if (!grown) return emtp_fail(err, EMTP_ENOMEM, "out of memory (rounds)");
        g->rounds = grown;
        g->cap_rounds = cap;
    }
    if (g->n_tokens + ne > g->cap_tokens) {
        int cap = g->cap_tokens ? 2 * g->cap_tokens : 64;
        while (cap < g->n_tokens + ne) cap *= 2;
        int32_t *grown = realloc(g->tokens, sizeof *grown * (size_t)cap);
        if (!grown) return emtp_fail(err, EMTP_ENOMEM, "out of memory (tokens)");
        g->tokens = grown;
        g->cap_tokens = cap;
    }
    int32_t *block = malloc(sizeof(int32_t) * (size_t)(nd + nt + ne + 1));
    if (!block) return emtp_fail(err, EMTP_ENOMEM, "out of memory (round)");
    r->rates = NULL;
    r->n_rates = 0;
    if (rates) {
        r->rates = malloc(sizeof(double) * (size_t)(n_rates + 1));
        if (!r->rates) {
            free(block);
            return emtp_fail(err, EMTP_ENOMEM, "out of memory (round)");
        }
        memcpy(r->rates, rates, sizeof(double) * (size_t)n_rates);
        r->n_rates = n_rates;
    }
    r->drafts = block;
    r->target = block + nd;
    r->emitted = block + nd + nt;
    if (nd) memcpy(r->drafts, drafts, sizeof(int32_t) * (size_t)nd);
    memcpy(r->target, target, sizeof(int32_t) * (size_t)nt);
    memcpy(r->emitted, emitted, sizeof(int32_t) * (size_t)ne);
    r->n_drafts = nd;
    r->n_target = nt;
    r->n_emitted = ne;
    r->index = g->n_rounds;
    g->rounds[g->n_rounds++] = *r;
    memcpy(g->tokens + g->n_tokens, emitted, sizeof(int32_t) * (size_t)ne);
    g->n_tokens += ne;
    return EMTP_OK;
}

void emtp_generation_free(emtp_generation *g) {
    if (!g) return;
    for (int i = 0; i < g->n_rounds; i++) {
        free(g->rounds[i].drafts);
        free(g->rounds[i].rates);
    }
    free(g->rounds);
    free(g->tokens);
    free(g->prompt);
    memset(g, 0, sizeof *g);
}

static const char *stop_reason(const emtp_generation *g, const emtp_config *cfg, const emtp_backend *b) {
    if (g->n_tokens && is_stop(b, g->tokens[g->n_tokens - 1])) return "eos";
    if (g->n_tokens >= cfg->max_new_tokens) return "max_new_tokens";
    if (g->n_prompt + g->n_tokens > b->context) return "context";
    return NULL;
}

static int min3(int a, int b, int c) {
    int m = a < b ? a : b;
    return m < c ? m : c;
}

int emtp_generate(emtp_backend *b, const int32_t *prompt, int n_prompt, const emtp_config *cfg,
                  emtp_generation *out, emtp_error *err) {
    memset(out, 0, sizeof *out);
    if (n_prompt < 1) return emtp_fail(err, EMTP_EUSAGE, "the prompt is empty; give at least one token");
    if (n_prompt > b->context)
        return emtp_fail(err, EMTP_EUSAGE, "the prompt has %d tokens but the context holds %d", n_prompt,
                         b->context);
    if (cfg->draft_len < 0 || cfg->max_new_tokens < 1)
        return emtp_fail(err, EMTP_EUSAGE, "--draft-len must be >= 0 and --max-new-tokens >= 1");
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= b->vocab_size)
            return emtp_fail(err, EMTP_EUSAGE, "--prompt-ids: id %d is outside the vocabulary of %d",
                             (int)prompt[i], b->vocab_size);
    const int V = b->vocab_size, H = b->hidden_size;
    const int K = cfg->draft_len;
    const int rows = K + 1;
    loop_ws w;
    memset(&w, 0, sizeof w);
    int rc = EMTP_OK;
    w.logits = malloc(sizeof(float) * (size_t)rows * (size_t)V);
    w.hidden = malloc(sizeof(float) * (size_t)rows * (size_t)H);
    w.dlogits = malloc(sizeof(float) * (size_t)V);
    w.carry = malloc(sizeof(float) * (size_t)H);
    w.carry2 = malloc(sizeof(float) * (size_t)H);
    w.p = malloc(sizeof(double) * (size_t)V);
    w.res = malloc(sizeof(double) * (size_t)V);
    w.dists = malloc(sizeof(double) * (size_t)V * (size_t)(K > 0 ? K : 1));
    w.rates = malloc(sizeof(double) * (size_t)(K + 1));
    out->prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
    if (!w.logits || !w.hidden || !w.dlogits || !w.carry || !w.carry2 || !w.p || !w.res || !w.dists || !w.rates ||
        !out->prompt) {
        rc = emtp_fail(err, EMTP_ENOMEM, "out of memory (loop workspace)");
        goto done;
    }
    memcpy(out->prompt, prompt, sizeof(int32_t) * (size_t)n_prompt);
    out->n_prompt = n_prompt;
    emtp_sampler *sampler = NULL;
    if (cfg->sample) {
        if ((rc = emtp_sampler_init(&w.sampler, &cfg->sampling, V, err))) goto done;
        w.has_sampler = 1;
        sampler = &w.sampler;
    }
    if (K > 0 && !b->has_drafter) {
        rc = emtp_fail(err, EMTP_EUSAGE, "this bundle has no tf_lite_mtp_drafter section; use --draft-len 0");
        goto done;
    }
    const emtp_draft_policy *policy = cfg->policy.enabled ? &cfg->policy : NULL;
    emtp_pcg32 probe_rng = {0, 0};
    if (policy) {
        int costed = policy->first_draft_ms > 0 && policy->draft_ms > 0 && K <= 64;
        for (int i = 0; costed && i <= K; i++) costed = policy->verify_ms[i] > 0;
        if (!costed) {
            rc = emtp_fail(err, EMTP_EUSAGE, "--draft-len auto needs the costs of a drafter step and of a verify of "
                           "1..%d tokens (--draft-costs, or a calibration)", K + 1);
            goto done;
        }
        if ((rc = emtp_draft_state_init(&w.policy, policy, K, err))) goto done;
        w.has_policy = 1;
        if (sampler) emtp_pcg32_seed(&probe_rng, cfg->sampling.seed, EMTP_PROBE_STREAM);
    }

    /* round 0: prefill */
    double t0 = now_ms(), g0 = b->graph_ms;
    if ((rc = b->ops->prefill(b->self, prompt, n_prompt, w.logits, w.hidden, err))) goto done;
    int32_t first;
    if (sampler) {
        emtp_distribution(sampler, w.logits, w.p);
        first = emtp_sample(sampler, w.p);
    } else {
        first = emtp_argmax(w.logits, V);
    }
    memcpy(w.carry, w.hidden, sizeof(float) * (size_t)H);
    emtp_round r;
    memset(&r, 0, sizeof r);
    r.position = n_prompt - 1;
    emtp_top_logits(w.logits, V, &r);
    r.ms_verify = round3(now_ms() - t0);
    r.ms_graph = round3(b->graph_ms - g0);
    if ((rc = push_round(out, &r, NULL, 0, &first, 1, &first, 1, NULL, 0, err))) goto done;

    int prev_first = 0, prev_last = n_prompt - 1;
    const int max_len = n_prompt + cfg->max_new_tokens;
    int32_t drafts[64 + 1], choices[64 + 1], seq[64 + 1];
    if (K > 64) {
        rc = emtp_fail(err, EMTP_EUSAGE, "--draft-len %d is more than 64", K);
        goto done;
    }
    const char *reason;
    while (!(reason = stop_reason(out, cfg, b))) {
        int seq_len = n_prompt + out->n_tokens;
        int q = seq_len - 1;
        int32_t last = out->tokens[out->n_tokens - 1];
        int k = min3(K, max_len - seq_len - 1, b->context - 1 - q);
        int probe = 0;
        int32_t probe_draft = 0;
        if (policy) k = emtp_draft_decide(&w.policy, k, w.rates, &probe);
        double ta = now_ms();
        g0 = b->graph_ms;
        int nd = 0;
        if (probe) { /* the round's first drafter step, never verified (draftlen.py) */
            emtp_views views = emtp_drafter_views(prev_first, prev_last, seq_len, b->sliding_window, cfg->kv_view);
            if ((rc = b->ops->draft(b->self, last, w.carry, q, &views, w.dlogits, w.carry2, err))) goto done;
            if (!sampler) {
                probe_draft = emtp_argmax(w.dlogits, V);
            } else {
                emtp_distribution(sampler, w.dlogits, w.dists);
                probe_draft = emtp_draw(w.dists, V, emtp_pcg32_uniform(&probe_rng), w.res);
            }
        }
        if (k > 0) {
            emtp_views views = emtp_drafter_views(prev_first, prev_last, seq_len, b->sliding_window, cfg->kv_view);
            int32_t token = last;
            const float *carry = w.carry;
            for (int i = 0; i < k; i++) {
                float *next = (i % 2 == 0) ? w.carry2 : w.carry; /* ping-pong buffers */
                if ((rc = b->ops->draft(b->self, token, carry, q, &views, w.dlogits, next, err))) goto done;
                if (!sampler) {
                    token = emtp_argmax(w.dlogits, V);
                } else {
                    double *qd = w.dists + (size_t)i * (size_t)V;
                    emtp_distribution(sampler, w.dlogits, qd);
                    token = emtp_sample(sampler, qd);
                }
                drafts[nd++] = token;
                carry = next;
            }
        }
        double tb = now_ms();
        seq[0] = last;
        memcpy(seq + 1, drafts, sizeof(int32_t) * (size_t)nd);
        if ((rc = b->ops->verify(b->self, seq, nd + 1, q, w.logits, w.hidden, err))) goto done;
        int n = 0, n_choices, n_new;
        if (!sampler) {
            for (int i = 0; i < nd + 1; i++) choices[i] = emtp_argmax(w.logits + (size_t)i * (size_t)V, V);
            n = 0;
            while (n < nd && drafts[n] == choices[n]) n++;
            n_choices = nd + 1;
            n_new = n + 1;
        } else if (nd) {
            int i;
            for (i = 0; i < nd; i++) {
                emtp_distribution(sampler, w.logits + (size_t)i * (size_t)V, w.p);
                const double *qd = w.dists + (size_t)i * (size_t)V;
                if (!emtp_accept(sampler, w.p[drafts[i]], qd[drafts[i]])) break;
            }
            n = i;
            memcpy(choices, drafts, sizeof(int32_t) * (size_t)i);
            if (i < nd) {
                emtp_residual(w.p, w.dists + (size_t)i * (size_t)V, V, w.res);
                choices[i] = emtp_sample(sampler, w.res);
            } else {
                emtp_distribution(sampler, w.logits + (size_t)nd * (size_t)V, w.p);
                choices[i] = emtp_sample(sampler, w.p);
            }
            n_choices = n_new = i + 1;
        } else {
            emtp_distribution(sampler, w.logits, w.p);
            choices[0] = emtp_sample(sampler, w.p);
            n_choices = n_new = 1;
        }
        int probe_ok = 0;
        if (policy && nd) emtp_draft_record(&w.policy, nd, n); /* n: accepted before the clip */
        if (probe) {
            probe_ok = !sampler ? probe_draft == choices[0]
                                : emtp_pcg32_uniform(&probe_rng) * w.dists[probe_draft] < w.p[probe_draft];
            emtp_draft_record_probe(&w.policy, probe_ok);
        }
        /* clip: at most the budget, nothing after the first stop id */
        if (n_new > max_len - seq_len) n_new = max_len - seq_len;
        for (int i = 0; i < n_new; i++)
            if (is_stop(b, choices[i])) {
                n_new = i + 1;
                break;
            }
        n = n_new - 1;
        memcpy(w.carry, w.hidden + (size_t)n * (size_t)H, sizeof(float) * (size_t)H);
        prev_first = q;
        prev_last = q + nd;
        b->ops->rollback(b->self, q + n + 1);
        memset(&r, 0, sizeof r);
        r.position = q;
        r.accepted = n;
        emtp_top_logits(w.logits + (size_t)n * (size_t)V, V, &r);
        double tc = now_ms();
        r.has_draft_ms = 1;
        r.ms_draft = round3(tb - ta);
        r.ms_verify = round3(tc - tb);
        r.ms_graph = round3(b->graph_ms - g0);
        r.has_probe = probe;
        r.probe_draft = probe_draft;
        r.probe_accepted = probe_ok;
        if ((rc = push_round(out, &r, drafts, nd, choices, n_choices, choices, n_new, policy ? w.rates : NULL, K, err)))
            goto done;
    }
    out->stop = reason;
    if (policy) {
        out->has_probes = 1;
        out->probes = w.policy.probes;
        out->probes_accepted = w.policy.probes_accepted;
    }

done:
    ws_free(&w);
    if (rc) emtp_generation_free(out);
    return rc;
}
