/* Adaptive draft length (`--draft-len auto`), decision for decision as src/edge_mtp/runtime/draftlen.py:
 * see its docstring for the rule (argmax of E(K) / cost(K) from per-call costs and windowed per-slot
 * acceptance counts, Leviathan et al. 2023) and the exact order of the binary64 operations, which this
 * file keeps one statement per rounding so that no compiler may fuse a multiply and an add (the Makefile
 * also passes -ffp-contract=off). */
#include "edge_mtp.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

void emtp_draft_policy_defaults(emtp_draft_policy *p) {
    memset(p, 0, sizeof *p);
    p->enabled = 1;
    p->window = 16;
    p->prior = 0.5;
    p->prior_weight = 1.0;
    p->probe_budget = 0.005;
    p->lookahead = 4;
}

int emtp_parse_draft_costs(const char *text, emtp_draft_policy *p) {
    double v[EMTP_MAX_DRAFT + 3];
    int n = 0;
    const char *s = text;
    while (*s) {
        while (*s == ' ' || *s == ',') s++;
        if (!*s) break;
        if (n == EMTP_MAX_DRAFT + 3) return -1;
        char *end;
        errno = 0;
        double x = strtod(s, &end);
        if (errno || end == s || !(x > 0) || isinf(x)) return -1;
        while (*end == ' ') end++;
        if (*end && *end != ',') return -1;
        v[n++] = x;
        s = end;
    }
    if (n < 3) return -1;
    p->first_draft_ms = v[0];
    p->draft_ms = v[1];
    for (int i = 2; i < n; i++) p->verify_ms[i - 2] = v[i];
    p->calibrated = 0;
    return n - 3;
}

void emtp_draft_estimates(const emtp_draft_policy *p, int k, const int *tested, const int *accepted, double *rates) {
    double prev = p->prior;
    for (int j = 0; j < k; j++) {
        double prior = p->prior_weight * prev;
        double num = (double)accepted[j] + prior;
        double den = (double)tested[j] + p->prior_weight;
        prev = num / den;
        rates[j] = prev;
    }
}

/* cost(K) = (c_first + (K - 1) * c_draft) + c_verify[K], one rounding per operation. */
static double cost_of(const emtp_draft_policy *p, int k) {
    if (k == 0) return p->verify_ms[0];
    double further = (double)(k - 1) * p->draft_ms;
    double drafts = p->first_draft_ms + further;
    return drafts + p->verify_ms[k];
}

int emtp_draft_best_k(const emtp_draft_policy *p, const double *rates, int k_max) {
    int best = 0;
    double best_score = 1.0 / p->verify_ms[0], prod = 1.0, e = 1.0;
    for (int k = 1; k <= k_max; k++) {
        prod = prod * rates[k - 1];
        e = e + prod;
        double score = e / cost_of(p, k);
        if (score > best_score) {
            best = k;
            best_score = score;
        }
    }
    return best;
}

int emtp_draft_can_pay(const emtp_draft_policy *p, int k_max) {
    for (int k = 1; k <= k_max; k++) {
        double perfect = (double)(k + 1) * p->verify_ms[0];
        if (perfect > cost_of(p, k)) return 1;
    }
    return 0;
}

int emtp_draft_state_init(emtp_draft_state *s, const emtp_draft_policy *p, int k, emtp_error *err) {
    memset(s, 0, sizeof *s);
    if (p->window < 1 || p->window > EMTP_MAX_WINDOW || p->lookahead < 0 || k < 0 || k > EMTP_MAX_DRAFT)
        return emtp_fail(err, EMTP_EUSAGE, "draft policy: window must be in 1..%d and K in 0..%d", EMTP_MAX_WINDOW,
                         EMTP_MAX_DRAFT);
    s->policy = p;
    s->k = k;
    size_t slots = (size_t)(k > 0 ? k : 1);
    s->ring = calloc(slots * (size_t)p->window, 1);
    s->head = calloc(slots, sizeof(int));
    s->count = calloc(slots, sizeof(int));
    if (!s->ring || !s->head || !s->count) {
        emtp_draft_state_free(s);
        return emtp_fail(err, EMTP_ENOMEM, "out of memory (draft policy)");
    }
    return EMTP_OK;
}

void emtp_draft_state_free(emtp_draft_state *s) {
    free(s->ring);
    free(s->head);
    free(s->count);
    memset(s, 0, sizeof *s);
}

static void push(emtp_draft_state *s, int slot, int outcome) {
    int w = s->policy->window;
    s->ring[(size_t)slot * (size_t)w + (size_t)s->head[slot]] = (unsigned char)outcome;
    s->head[slot] = (s->head[slot] + 1) % w;
    if (s->count[slot] < w) s->count[slot]++;
}

static void counts(const emtp_draft_state *s, int *tested, int *accepted) {
    int w = s->policy->window;
    for (int j = 0; j < s->k; j++) {
        tested[j] = s->count[j];
        accepted[j] = 0;
        for (int i = 0; i < s->count[j]; i++) accepted[j] += s->ring[(size_t)j * (size_t)w + (size_t)i];
    }
}

int emtp_draft_decide(emtp_draft_state *s, int k_max, double *rates, int *probe) {
    const emtp_draft_policy *p = s->policy;
    int tested[EMTP_MAX_DRAFT], accepted[EMTP_MAX_DRAFT];
    *probe = 0;
    if (k_max > s->k) k_max = s->k;
    counts(s, tested, accepted);
    emtp_draft_estimates(p, s->k, tested, accepted, rates);
    if (k_max <= 0 || !emtp_draft_can_pay(p, k_max)) return 0;
    int k = tested[0] ? emtp_draft_best_k(p, rates, k_max) : 0; /* slot 1 untested: a probe first */
    if (k > 0) return k;
    s->plain_rounds++;
    double spent = (double)s->probes * p->first_draft_ms;
    double plain = (double)s->plain_rounds * p->verify_ms[0];
    *probe = spent <= p->probe_budget * plain;
    int w = p->window, n = s->count[0];
    int last = n ? s->ring[(size_t)((s->head[0] + w - 1) % w)] : 0;
    if (!*probe && last) { /* on a run of acceptances: keep testing while it can flip K* */
        /* slot 1's window after `lookahead` more accepted tests: the newest w outcomes of (window, 1 x L) */
        int extra = p->lookahead < w ? p->lookahead : w;
        int keep = n < w - extra ? n : w - extra, kept = 0;
        for (int i = 0; i < keep; i++) kept += s->ring[(size_t)((s->head[0] + w - 1 - i) % w)];
        double hypo[EMTP_MAX_DRAFT];
        int t0 = tested[0], a0 = accepted[0];
        tested[0] = keep + extra;
        accepted[0] = kept + extra;
        emtp_draft_estimates(p, s->k, tested, accepted, hypo);
        tested[0] = t0;
        accepted[0] = a0;
        *probe = emtp_draft_best_k(p, hypo, k_max) > 0;
    }
    return 0;
}

void emtp_draft_record(emtp_draft_state *s, int drafts, int accepted) {
    int tested = accepted + 1 < drafts ? accepted + 1 : drafts;
    for (int j = 0; j < tested; j++) push(s, j, j < accepted);
}

void emtp_draft_record_probe(emtp_draft_state *s, int accepted) {
    s->probes++;
    s->probes_accepted += accepted != 0;
    if (s->k > 0) push(s, 0, accepted != 0);
}

/* ---- calibration --------------------------------------------------------------------------------- */
static double clock_ms(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n-1], rounded to microseconds, at least 0.001 ms. */
static double median_ms(double *v, int n) {
    if (n < 1) return 0.001;
    qsort(v, (size_t)n, sizeof *v, by_value);
    double mid = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
    double r = floor(mid * 1000.0 + 0.5) / 1000.0;
    return r > 0.001 ? r : 0.001;
}

/* Rounds of each K that fit after a one-token prefill (draftlen.py calibration_rounds): 4, fewer in a short
 * context, 0 when not even 2 fit. */
static int calibration_rounds(int k, int context) {
    int rounds = (context - 1) / (k + 1);
    if (rounds > 4) rounds = 4;
    return rounds < 2 ? 0 : rounds;
}

/* One greedy round of d drafts at query position q, every draft taken as accepted (draftlen.py
 * _timed_round): the drafter steps' ms into steps[], the verify's into *verify_ms; *last and carry become
 * the target's next token and hidden state. */
static int timed_round(emtp_backend *b, int d, int q, int prev_first, int prev_last, int32_t *last, float *carry,
                       float *logits, float *hidden, float *next, double *steps, double *verify_ms,
                       emtp_error *err) {
    const int V = b->vocab_size, H = b->hidden_size;
    emtp_views views = emtp_drafter_views(prev_first, prev_last, q + 1, b->sliding_window, EMTP_KV_HF);
    int32_t seq[EMTP_MAX_DRAFT + 1];
    float *src = carry, *dst = next; /* ping-pong: carry is overwritten by the verify's hidden state below */
    seq[0] = *last;
    for (int i = 0; i < d; i++) {
        double t0 = clock_ms();
        int rc = b->ops->draft(b->self, seq[i], src, q, &views, logits, dst, err);
        if (rc) return rc;
        steps[i] = clock_ms() - t0;
        seq[i + 1] = emtp_argmax(logits, V);
        float *t = src;
        src = dst, dst = t;
    }
    double t0 = clock_ms();
    int rc = b->ops->verify(b->self, seq, d + 1, q, logits, hidden, err);
    if (rc) return rc;
    *verify_ms = clock_ms() - t0;
    *last = emtp_argmax(logits + (size_t)d * (size_t)V, V);
    memcpy(carry, hidden + (size_t)d * (size_t)H, sizeof(float) * (size_t)H);
    return EMTP_OK;
}

int emtp_calibrate(emtp_backend *b, int k, int32_t token, int reps, emtp_draft_policy *p, emtp_error *err) {
    if (k < 0 || k > EMTP_MAX_DRAFT || reps < 1)
        return emtp_fail(err, EMTP_EUSAGE, "calibration: K must be in 0..%d", EMTP_MAX_DRAFT);
    const int rounds = calibration_rounds(k, b->context), timed = rounds - rounds / 2;
    if (!rounds)
        return emtp_fail(err, EMTP_EUSAGE, "calibrating K up to %d needs a context of %d, not %d", k,
                         2 * (k + 1) + 1, b->context);
    if (k > 0 && !b->has_drafter)
        return emtp_fail(err, EMTP_EUSAGE, "this bundle has no tf_lite_mtp_drafter section; use --draft-len 0");
    const int V = b->vocab_size, H = b->hidden_size, warmup = 1;
    const size_t R = (size_t)reps * (size_t)timed; /* timed rounds of each K */
    float *logits = malloc(sizeof(float) * (size_t)(k + 1) * (size_t)V);
    float *hidden = malloc(sizeof(float) * (size_t)(k + 1) * (size_t)H);
    float *start = malloc(sizeof(float) * (size_t)H), *carry = malloc(sizeof(float) * (size_t)H);
    float *next = malloc(sizeof(float) * (size_t)H);
    double *verify = malloc(sizeof(double) * (size_t)(k + 1) * R); /* [K][timed round]: verify of K+1 tokens */
    double *first = malloc(sizeof(double) * (size_t)(k + 1) * R);  /* first step of each drafting round */
    double *further = malloc(sizeof(double) * (size_t)(k + 1) * R); /* later steps of the K = k rounds */
    double steps[EMTP_MAX_DRAFT];
    int n_first = 0, n_further = 0, n_verify[EMTP_MAX_DRAFT + 1] = {0}, rc = EMTP_OK;
    int32_t start_token;
    if (!logits || !hidden || !start || !carry || !next || !verify || !first || !further) {
        rc = emtp_fail(err, EMTP_ENOMEM, "out of memory (calibration)");
        goto done;
    }
    if ((rc = b->ops->prefill(b->self, &token, 1, logits, hidden, err))) goto done;
    start_token = emtp_argmax(logits, V);
    memcpy(start, hidden, sizeof(float) * (size_t)H);
    for (int rep = 0; rep < warmup + reps; rep++) {
        for (int d = 0; d <= k; d++) { /* a run of `rounds` rounds of d drafts from position 1, the 2nd half timed */
            int32_t last = start_token;
            int q = 1, prev_first = 0, prev_last = 0;
            memcpy(carry, start, sizeof(float) * (size_t)H);
            for (int r = 0; r < rounds; r++) {
                double verify_ms;
                if ((rc = timed_round(b, d, q, prev_first, prev_last, &last, carry, logits, hidden, next, steps,
                                      &verify_ms, err)))
                    goto done;
                prev_first = q, prev_last = q + d, q += d + 1;
                if (rep < warmup || r < rounds / 2) continue;
                verify[(size_t)d * R + (size_t)n_verify[d]++] = verify_ms;
                if (d > 0) first[n_first++] = steps[0];
                for (int i = 1; d == k && i < d; i++) further[n_further++] = steps[i];
            }
            b->ops->rollback(b->self, 1);
        }
    }
    for (int d = 0; d <= k; d++) { /* non-decreasing in the tokens verified (draftlen.py calibrate) */
        p->verify_ms[d] = median_ms(verify + (size_t)d * R, n_verify[d]);
        if (d > 0 && p->verify_ms[d] < p->verify_ms[d - 1]) p->verify_ms[d] = p->verify_ms[d - 1];
    }
    p->first_draft_ms = median_ms(first, n_first);
    p->draft_ms = n_further ? median_ms(further, n_further) : p->first_draft_ms;
    p->calibrated = 1;
done:
    free(logits);
    free(hidden);
    free(start);
    free(carry);
    free(next);
    free(verify);
    free(first);
    free(further);
    return rc;
}
