/* The core without LiteRT: the loop over a fake model (greedy invariance across K, stop ids, context
 * and budget stops, speculative sampling with a perfect drafter, error propagation without leaks),
 * the sampler and views against vectors from the Python reference, the JSON reader, the trace writer
 * and the number formatting. Run it under valgrind too (make valgrind). */
#include "check.h"
#include "edge_mtp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fake model ------------------------------------------------------------------------------
 * A causal "language model" over V ids whose state after a prefix is a 32-bit hash of it. The cache
 * is the token per slot; verify writes slots start.. and hashes slots 0..p (so a stale slot read
 * would change the result). hidden = the hash as two exact 16-bit floats; the drafter re-derives the
 * target's state from the carry and mispredicts on a fixed fraction of states. */
enum { FV = 40, FH = 4 };

typedef struct fake {
    int32_t slots[256];
    int context, length;
    int wrong_every;   /* drafter argmax differs from the target's when hash % wrong_every == 0 (0 = never) */
    int fail_after;    /* fail the n-th backend call (0 = never) */
    int calls, verifies, drafts;
    double temperature_bias;
} fake;

static uint32_t mix(uint32_t h, int32_t t) {
    h ^= (uint32_t)t + 0x9e3779b9u + (h << 6) + (h >> 2);
    h *= 0x85ebca6bu;
    return h ^ (h >> 13);
}

static void logits_of(uint32_t h, float *out) {
    uint32_t x = h;
    for (int i = 0; i < FV; i++) {
        x = x * 1664525u + 1013904223u;
        out[i] = (float)((double)(x >> 8) / 16777216.0 * 8.0 - 4.0);
    }
}

static void encode(uint32_t h, float *hidden) {
    hidden[0] = (float)(h & 0xFFFF);
    hidden[1] = (float)(h >> 16);
    hidden[2] = hidden[3] = 0.5f;
}

static uint32_t decode_h(const float *hidden) {
    return (uint32_t)hidden[0] | (uint32_t)hidden[1] << 16;
}

static int tick(fake *f, emtp_error *err) {
    f->calls++;
    if (f->fail_after && f->calls >= f->fail_after) return emtp_fail(err, EMTP_ELITERT, "fake failure at call %d", f->calls);
    return EMTP_OK;
}

static int fake_verify(void *self, const int32_t *tokens, int n, int start, float *logits, float *hidden, emtp_error *err) {
    fake *f = self;
    int rc = tick(f, err);
    if (rc) return rc;
    if (start != f->length) return emtp_fail(err, EMTP_ESTATE, "verify at %d but %d valid", start, f->length);
    if (start + n > f->context) return emtp_fail(err, EMTP_ESTATE, "verify past the context");
    f->verifies++;
    for (int i = 0; i < n; i++) {
        f->slots[start + i] = tokens[i];
        uint32_t h = 2166136261u;
        for (int p = 0; p <= start + i; p++) h = mix(h, f->slots[p]);
        logits_of(h, logits + (size_t)i * FV);
        encode(h, hidden + (size_t)i * FH);
    }
    f->length = start + n;
    return EMTP_OK;
}

static int fake_prefill(void *self, const int32_t *tokens, int n, float *logits, float *hidden, emtp_error *err) {
    fake *f = self;
    float l[256 * FV], h[256 * FH];
    f->length = 0;
    int rc = fake_verify(f, tokens, n, 0, l, h, err);
    if (rc) return rc;
    memcpy(logits, l + (size_t)(n - 1) * FV, sizeof(float) * FV);
    memcpy(hidden, h + (size_t)(n - 1) * FH, sizeof(float) * FH);
    return EMTP_OK;
}

static void fake_rollback(void *self, int length) {
    ((fake *)self)->length = length;
}

static int fake_draft(void *self, int32_t token, const float *carry, int position, const emtp_views *views,
                      float *logits, float *carry_out, emtp_error *err) {
    fake *f = self;
    int rc = tick(f, err);
    if (rc) return rc;
    if (views->full_hi > position || views->sliding_hi >= f->context || views->sliding_lo < 0)
        return emtp_fail(err, EMTP_ESTATE, "bad drafter view");
    f->drafts++;
    uint32_t h = mix(decode_h(carry), token);
    logits_of(h, logits);
    if (f->wrong_every && h % (uint32_t)f->wrong_every == 0) {
        int best = emtp_argmax(logits, FV);
        logits[(best + 1) % FV] = 100.0f; /* a confident wrong guess */
    }
    encode(h, carry_out);
    return EMTP_OK;
}

static const emtp_backend_ops FAKE_OPS = {fake_prefill, fake_verify, fake_rollback, fake_draft, NULL};

static void fake_backend(fake *f, emtp_backend *b, int context, int wrong_every) {
    memset(f, 0, sizeof *f);
    f->context = context;
    f->wrong_every = wrong_every;
    memset(b, 0, sizeof *b);
    b->ops = &FAKE_OPS;
    b->self = f;
    b->name = "fake";
    snprintf(b->model_id, sizeof b->model_id, "fake");
    b->vocab_size = FV;
    b->hidden_size = FH;
    b->context = context;
    b->sliding_window = 6;
    b->max_verify = 5;
    b->default_draft_len = 4;
    b->has_drafter = 1;
}

/* Plain greedy decoding by hand: the oracle. */
static int oracle(const int32_t *prompt, int n, int max_new, int32_t *out) {
    int32_t seq[512];
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)n);
    float l[FV];
    for (int i = 0; i < max_new; i++) {
        uint32_t h = 2166136261u;
        for (int p = 0; p < n + i; p++) h = mix(h, seq[p]);
        logits_of(h, l);
        seq[n + i] = out[i] = emtp_argmax(l, FV);
    }
    return max_new;
}

static void test_greedy_invariance(checks *c) {
    int32_t prompts[3][5] = {{1, 2, 3, 4, 5}, {7}, {30, 31, 2, 9, 9}};
    int lens[3] = {5, 1, 5};
    for (int p = 0; p < 3; p++) {
        int32_t want[64];
        oracle(prompts[p], lens[p], 37, want);
        for (int k = 0; k <= 6; k++) {
            fake f;
            emtp_backend b;
            fake_backend(&f, &b, 200, 3);
            emtp_config cfg = {k, 37, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
            emtp_generation g;
            emtp_error err = {0, ""};
            int rc = emtp_generate(&b, prompts[p], lens[p], &cfg, &g, &err);
            CHECKF(c, rc == 0, "%s", err.message);
            if (rc) continue;
            CHECKF(c, g.n_tokens == 37 && !memcmp(g.tokens, want, sizeof(int32_t) * 37), "prompt %d K=%d", p, k);
            CHECK(c, !strcmp(g.stop, "max_new_tokens"));
            int accepted = 0, drafted = 0, emitted = 0;
            for (int r = 0; r < g.n_rounds; r++) {
                const emtp_round *rd = &g.rounds[r];
                CHECK(c, rd->index == r);
                CHECK(c, rd->n_drafts <= k && rd->accepted <= rd->n_drafts);
                CHECK(c, rd->n_emitted == rd->accepted + 1 || r == 0);
                CHECK(c, !memcmp(rd->emitted, rd->target, sizeof(int32_t) * (size_t)rd->n_emitted));
                CHECK(c, rd->position == lens[p] - 1 + emitted - (r == 0 ? 0 : 0));
                emitted += rd->n_emitted;
                accepted += rd->accepted;
                drafted += rd->n_drafts;
            }
            if (k > 0) CHECKF(c, accepted > 0 && accepted < drafted, "K=%d accepted %d of %d", k, accepted, drafted);
            emtp_generation_free(&g);
        }
    }
}

static void test_perfect_drafter(checks *c) {
    /* greedy: everything accepted; sampling with q == p: every draft accepted too (u * q < p) */
    int32_t prompt[3] = {4, 5, 6};
    for (int sample = 0; sample < 2; sample++) {
        fake f;
        emtp_backend b;
        fake_backend(&f, &b, 200, 0);
        emtp_config cfg = {4, 41, sample, {1.0, 0, 1.0, 11}, EMTP_KV_HF, {0}};
        emtp_generation g;
        emtp_error err = {0, ""};
        int rc = emtp_generate(&b, prompt, 3, &cfg, &g, &err);
        CHECKF(c, rc == 0, "%s", err.message);
        if (rc) continue;
        CHECK(c, g.n_tokens == 41);
        for (int r = 1; r < g.n_rounds; r++) CHECK(c, g.rounds[r].accepted == g.rounds[r].n_drafts);
        CHECK(c, g.n_rounds == 1 + 8); /* 40 tokens after round 0 in rounds of 5 */
        emtp_generation_free(&g);
    }
}

static void test_sampling_deterministic(checks *c) {
    int32_t prompt[2] = {3, 8};
    int32_t first[64];
    int n_first = 0;
    for (int rep = 0; rep < 3; rep++) {
        fake f;
        emtp_backend b;
        fake_backend(&f, &b, 200, 2);
        emtp_config cfg = {3, 30, 1, {0.9, 7, 0.95, rep < 2 ? 1234 : 99}, EMTP_KV_HF, {0}};
        emtp_generation g;
        emtp_error err = {0, ""};
        int rc = emtp_generate(&b, prompt, 2, &cfg, &g, &err);
        CHECKF(c, rc == 0, "%s", err.message);
        if (rc) continue;
        if (rep == 0) {
            n_first = g.n_tokens;
            memcpy(first, g.tokens, sizeof(int32_t) * (size_t)g.n_tokens);
        } else if (rep == 1) {
            CHECK(c, g.n_tokens == n_first && !memcmp(first, g.tokens, sizeof(int32_t) * (size_t)n_first));
        } else {
            CHECK(c, !(g.n_tokens == n_first && !memcmp(first, g.tokens, sizeof(int32_t) * (size_t)n_first)));
        }
        emtp_generation_free(&g);
    }
}

static void test_stops(checks *c) {
    int32_t prompt[3] = {1, 2, 3}, want[64];
    oracle(prompt, 3, 40, want);
    /* eos: make the 10th generated token a stop id; K=4 so a round carries tokens past it */
    fake f;
    emtp_backend b;
    fake_backend(&f, &b, 200, 0);
    b.stop_ids[0] = want[9];
    b.n_stop = 1;
    int first = 0;
    while (want[first] != want[9]) first++;
    emtp_config cfg = {4, 40, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
    emtp_generation g;
    emtp_error err = {0, ""};
    int rc = emtp_generate(&b, prompt, 3, &cfg, &g, &err);
    CHECKF(c, rc == 0, "%s", err.message);
    if (!rc) {
        CHECK(c, !strcmp(g.stop, "eos") && g.n_tokens == first + 1 && g.tokens[first] == want[9]);
        emtp_generation_free(&g);
    }
    /* context: 3 prompt + room for 9 more; the loop never runs the target past slot 11 (the fake errors) */
    for (int k = 0; k <= 4; k++) {
        fake_backend(&f, &b, 12, 3);
        emtp_config cc = {k, 40, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
        rc = emtp_generate(&b, prompt, 3, &cc, &g, &err);
        CHECKF(c, rc == 0, "K=%d: %s", k, err.message);
        if (!rc) {
            CHECKF(c, !strcmp(g.stop, "context") && g.n_tokens == 10 && !memcmp(g.tokens, want, 40), "K=%d: %s %d", k,
                   g.stop, g.n_tokens);
            emtp_generation_free(&g);
        }
    }
    /* budget: exactly max_new_tokens even when a round could emit more */
    for (int n = 1; n <= 7; n++) {
        fake_backend(&f, &b, 200, 0);
        emtp_config cc = {4, n, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
        rc = emtp_generate(&b, prompt, 3, &cc, &g, &err);
        CHECK(c, rc == 0);
        if (!rc) {
            CHECK(c, g.n_tokens == n && !strcmp(g.stop, "max_new_tokens") && !memcmp(g.tokens, want, sizeof(int32_t) * (size_t)n));
            emtp_generation_free(&g);
        }
    }
}

static void test_errors(checks *c) {
    int32_t prompt[3] = {1, 2, 3}, bad[1] = {FV};
    fake f;
    emtp_backend b;
    emtp_generation g;
    emtp_error err = {0, ""};
    emtp_config cfg = {4, 30, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
    fake_backend(&f, &b, 200, 3);
    CHECK(c, emtp_generate(&b, prompt, 0, &cfg, &g, &err) == EMTP_EUSAGE);
    CHECK(c, emtp_generate(&b, bad, 1, &cfg, &g, &err) == EMTP_EUSAGE && strstr(err.message, "vocabulary"));
    fake_backend(&f, &b, 2, 3);
    CHECK(c, emtp_generate(&b, prompt, 3, &cfg, &g, &err) == EMTP_EUSAGE && strstr(err.message, "context"));
    emtp_config neg = {-1, 30, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
    CHECK(c, emtp_generate(&b, prompt, 1, &neg, &g, &err) == EMTP_EUSAGE);
    emtp_config hot = {2, 30, 1, {0.0, 0, 1.0, 0}, EMTP_KV_HF, {0}};
    fake_backend(&f, &b, 200, 3);
    CHECK(c, emtp_generate(&b, prompt, 3, &hot, &g, &err) == EMTP_EUSAGE);
    /* a backend failure at every possible call: the error comes back, nothing leaks (valgrind) */
    for (int at = 1; at < 40; at++) {
        fake_backend(&f, &b, 200, 3);
        f.fail_after = at;
        int rc = emtp_generate(&b, prompt, 3, &cfg, &g, &err);
        if (rc == 0) {
            emtp_generation_free(&g);
            break;
        }
        CHECK(c, rc == EMTP_ELITERT && strstr(err.message, "fake failure"));
        CHECK(c, g.rounds == NULL && g.tokens == NULL && g.prompt == NULL);
    }
    b.has_drafter = 0;
    fake_backend(&f, &b, 200, 3);
    b.has_drafter = 0;
    CHECK(c, emtp_generate(&b, prompt, 3, &cfg, &g, &err) == EMTP_EUSAGE && strstr(err.message, "drafter"));
}

static void test_pcg_and_sampling(checks *c) {
    emtp_pcg32 r;
    emtp_pcg32_seed(&r, 42, EMTP_PCG_STREAM);
    uint32_t want[4] = {2707161783u, 2068313097u, 3122475824u, 2211639955u};
    for (int i = 0; i < 4; i++) CHECK(c, emtp_pcg32_next(&r) == want[i]);
    CHECK(c, emtp_pcg32_uniform(&r) == 0.7486033647998483);
    emtp_pcg32_seed(&r, UINT64_MAX, EMTP_PCG_STREAM);
    CHECK(c, emtp_pcg32_next(&r) == 290611831u && emtp_pcg32_next(&r) == 3872925298u);

    double a[1000];
    for (int i = 0; i < 1000; i++) a[i] = sin((double)i) * exp((double)(i % 7));
    CHECK(c, emtp_pairwise_sum(a, 1000) == -359.1604944491744);
    CHECK(c, emtp_pairwise_sum(a, 77) == -199.12376215608154);
    CHECK(c, emtp_pairwise_sum(a, 300) == 780.5853627435129);

    float logits[12];
    for (int i = 0; i < 12; i++) logits[i] = (float)(sin(i * 1.7) * 3);
    logits[5] = logits[2];
    static const struct {
        double t;
        int k;
        double p;
        double probs[12];
        int draws[4];
    } cases[] = {
        {1.0, 0, 1.0, {0.02303595091966771, 0.4512630821110855, 0.010702022698592037, 0.0014327733259014482,
                       0.10143276614427194, 0.010702022698592037, 0.002821960686052064, 0.0036061644036917144,
                       0.3032451761181643, 0.07573782810072087, 0.0012877076373920358, 0.014732545155868387},
         {0, 1, 8, 11}},
        {0.7, 5, 1.0, {0.00802422917566016, 0.5625374116871593, 0, 0, 0.06669262133476285, 0, 0, 0,
                       0.31880761786138945, 0.04393811994102833, 0, 0},
         {0, 1, 8, 9}},
        {1.3, 0, 0.8, {0, 0.4334388072788088, 0, 0, 0.13749052326954606, 0, 0, 0, 0.31925002738896074,
                       0.1098206420626845, 0, 0},
         {1, 1, 8, 9}},
        {0.5, 3, 0.6, {0, 1.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {1, 1, 1, 1}},
    };
    double us[4] = {0.0, 0.3, 0.7, 0.999999};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        emtp_sampler s;
        emtp_sampling cfg = {cases[i].t, cases[i].k, cases[i].p, 0};
        emtp_error err;
        CHECK(c, emtp_sampler_init(&s, &cfg, 12, &err) == 0);
        double probs[12], work[12];
        emtp_distribution(&s, logits, probs);
        int same = 0;
        for (int j = 0; j < 12; j++) same += fabs(probs[j] - cases[i].probs[j]) <= 2e-16 * (1 + cases[i].probs[j]);
        CHECKF(c, same == 12, "distribution case %zu", i);
        for (int j = 0; j < 4; j++) CHECK(c, emtp_draw(probs, 12, us[j], work) == cases[i].draws[j]);
        emtp_sampler_free(&s);
    }
    emtp_sampler s;
    emtp_sampling one = {1.0, 0, 1.0, 0}, half = {0.5, 0, 1.0, 0};
    double p[12], q[12], res[12];
    emtp_error err;
    emtp_sampler_init(&s, &one, 12, &err);
    emtp_distribution(&s, logits, p);
    s.cfg = half;
    emtp_distribution(&s, logits, q);
    emtp_residual(p, q, 12, res);
    CHECK(c, fabs(res[0] - 0.10662605193380646) < 1e-16 && res[1] == 0.0 && fabs(res[9] - 0.28676657648851755) < 1e-16);
    emtp_sampler_free(&s);
}

/* top_k on a row long enough (8192: two ids a block) that the distribution ranks only the ids at or above its
 * block-maxima floor: the same ids, and the same probabilities bit for bit, as ranking every id. The reference
 * ranks by counting (rank = ids above + equal ids before), sums the kept terms in rank order as the full sort
 * would. Rows of a few values and a common fill, as a drafter's logits, so ties decide most ranks. */
static void test_top_k_distribution(checks *c) {
    enum { N = 8192, TOP_K = 64 };
    static float row[N];
    static double probs[N], kept[TOP_K];
    int ids[TOP_K];
    for (int trial = 0; trial < 3; trial++) {
        for (int i = 0; i < N; i++) row[i] = (i * 7919 + trial * 31) % 97 < 90 ? -7.5f : (float)((i * 31) % 5);
        if (trial == 2) row[N - 1] = 40.0f; /* one id far above the rest, the last */
        emtp_sampling cfg = {1.0, TOP_K, 1.0, 0};
        emtp_sampler s;
        emtp_error err = {0};
        CHECK(c, emtp_sampler_init(&s, &cfg, N, &err) == 0);
        emtp_distribution(&s, row, probs);
        emtp_sampler_free(&s);
        /* the shortcut itself is taken (a wrong floor would fall back to the full sort, exact but slow) */
        static double x[N], scratch[N];
        static int candidates[N];
        for (int i = 0; i < N; i++) x[i] = row[i];
        int n_candidates = emtp_top_k_candidates(x, N, TOP_K, scratch, candidates);
        CHECKF(c, n_candidates >= TOP_K && n_candidates < N / 2, "trial %d: %d candidates", trial, n_candidates);
        int found = 0;
        for (int i = 0; i < N; i++) {
            int rank = 0;
            for (int j = 0; j < N; j++) rank += row[j] > row[i] || (row[j] == row[i] && j < i);
            if (rank < TOP_K) ids[rank] = i, found++;
        }
        CHECK(c, found == TOP_K);
        for (int r = 0; r < TOP_K; r++) kept[r] = exp((double)row[ids[r]] - (double)row[ids[0]]);
        double total = emtp_pairwise_sum(kept, TOP_K);
        int same = 1, nonzero = 0;
        for (int r = 0; r < TOP_K; r++) same &= probs[ids[r]] == kept[r] / total;
        for (int i = 0; i < N; i++) nonzero += probs[i] != 0.0;
        CHECKF(c, same && nonzero == TOP_K, "top_k distribution, trial %d: %d ids kept", trial, nonzero);
    }
    /* NaN ranks last, as in numpy's sort: the top 3 of [NaN, 1, 2, NaN, 0, 3] are ids 5, 2, 1 */
    const float with_nan[6] = {NAN, 1, 2, NAN, 0, 3};
    emtp_sampling cfg = {1.0, 3, 1.0, 0};
    emtp_sampler s;
    emtp_error err = {0};
    CHECK(c, emtp_sampler_init(&s, &cfg, 6, &err) == 0);
    emtp_distribution(&s, with_nan, probs);
    emtp_sampler_free(&s);
    double z = 1.0 + exp(-1.0) + exp(-2.0);
    CHECKF(c, fabs(probs[5] - 1.0 / z) < 1e-15 && fabs(probs[2] - exp(-1.0) / z) < 1e-15 && probs[0] == 0.0 &&
              probs[3] == 0.0 && probs[4] == 0.0, "NaN row: %g %g %g", probs[5], probs[2], probs[0]);
}

static void test_views(checks *c) {
    static const int cases[][12] = {
        /* prev_first, prev_last, length, window, hf sliding lo/hi, full lo/hi, clean sliding lo/hi, full lo/hi */
        {0, 9, 10, 16, 0, 9, 0, 9, 0, 8, 0, 8},         {10, 14, 12, 16, 0, 11, 0, 11, 0, 10, 0, 10},
        {30, 34, 33, 16, 18, 34, 0, 32, 15, 31, 0, 31}, {3, 7, 6, 4, 1, 5, 0, 5, 0, 4, 0, 4},
        {40, 44, 45, 16, 28, 44, 0, 44, 27, 43, 0, 43},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const int *k = cases[i];
        emtp_views h = emtp_drafter_views(k[0], k[1], k[2], k[3], EMTP_KV_HF);
        emtp_views cl = emtp_drafter_views(k[0], k[1], k[2], k[3], EMTP_KV_CLEAN);
        CHECKF(c, h.sliding_lo == k[4] && h.sliding_hi == k[5] && h.full_lo == k[6] && h.full_hi == k[7], "hf %zu", i);
        CHECKF(c, cl.sliding_lo == k[8] && cl.sliding_hi == k[9] && cl.full_lo == k[10] && cl.full_hi == k[11], "clean %zu", i);
    }
}

static void test_top_logits(checks *c) {
    /* ties keep the smaller id first, +inf ranks first, NaN last; expected orders from numpy's
     * argsort(-row, kind="stable"), which the Python loop's top list follows */
    static const struct {
        int n;
        float row[8];
        int want[EMTP_TOP_LOGITS];
    } cases[] = {
        {8, {1, 3, 3, 2, 3, 0, 5, 2}, {6, 1, 2, 4, 3}},
        {8, {0, 0, 0, 0, 0, 0, 0, 0}, {0, 1, 2, 3, 4}},
        {8, {NAN, -INFINITY, 2, NAN, INFINITY, -INFINITY, 2, 1}, {4, 2, 6, 7, 1}},
        {3, {NAN, -1, NAN}, {1, 0, 2}},
        {6, {-INFINITY, -INFINITY, 7, -INFINITY, 1, -INFINITY}, {2, 4, 0, 1, 3}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        emtp_round r;
        emtp_top_logits(cases[i].row, cases[i].n, &r);
        int k = cases[i].n < EMTP_TOP_LOGITS ? cases[i].n : EMTP_TOP_LOGITS, same = r.n_top == k;
        for (int j = 0; same && j < k; j++) same = r.top_ids[j] == cases[i].want[j];
        CHECKF(c, same, "top_logits case %zu: n_top %d, first id %d", i, r.n_top, r.top_ids[0]);
    }
}

/* Oracles for the row scans, by their definitions (O(n^2) and insertion sort: small rows). The first maximum:
 * no id ranks above it and none before it is as high; NaN is skipped, except at id 0 (nothing ranks above it,
 * which the one-pass scan these replaced returned). */
static int first_max_by_definition(const float *row, int n) {
    if (isnan(row[0])) return 0;
    for (int i = 0; i < n; i++) {
        int top = !isnan(row[i]);
        for (int j = 0; j < n && top; j++) top = !(row[j] > row[i]);
        if (top) return i;
    }
    return -1;
}

/* ids 0..n-1 stably sorted by rank (numpy's argsort(-row, kind="stable"), NaN last) */
static void stable_rank_order(const float *row, int n, int *order) {
    for (int i = 0; i < n; i++) {
        int at = i;
        for (; at > 0 && emtp_ranks_above(row[i], row[order[at - 1]]); at--) order[at] = order[at - 1];
        order[at] = i;
    }
}

/* Random rows with many ties, signed zeros, infinities and NaNs, of lengths around the scans' lane and block
 * widths; then a Gemma-sized row with its maximum and top entries planted at the ends and in between. */
static void test_row_scans(checks *c) {
    static const float palette[] = {2.0f, -1.5f, 0.0f, -0.0f, -INFINITY, 2.0f, INFINITY, NAN};
    enum { MAXN = 300, BIG = 262144 };
    float row[MAXN];
    int order[MAXN], bad_argmax = 0, bad_top = 0;
    emtp_pcg32 rng;
    emtp_pcg32_seed(&rng, 11, EMTP_PCG_STREAM);
    for (int t = 0; t < 3000; t++) {
        int n = 1 + (int)(emtp_pcg32_next(&rng) % MAXN), kinds = 2 + (int)(emtp_pcg32_next(&rng) % 7);
        for (int i = 0; i < n; i++) {
            uint32_t u = emtp_pcg32_next(&rng);
            row[i] = u % 2 ? palette[(u >> 1) % (uint32_t)kinds] : (float)emtp_pcg32_uniform(&rng) * 8.0f - 4.0f;
        }
        for (int i = 0; t % 5 == 0 && i < n && i < 5 + t % 130; i++) row[i] = NAN; /* a list full of NaNs at first */
        bad_argmax += emtp_argmax(row, n) != first_max_by_definition(row, n);
        emtp_round r;
        emtp_top_logits(row, n, &r);
        stable_rank_order(row, n, order);
        int k = n < EMTP_TOP_LOGITS ? n : EMTP_TOP_LOGITS, same = r.n_top == k;
        for (int j = 0; same && j < k; j++) same = r.top_ids[j] == order[j] && memcmp(&r.top_values[j], &row[order[j]], 4) == 0;
        bad_top += !same;
    }
    CHECKF(c, bad_argmax == 0, "argmax differs from the first maximum on %d of 3000 rows", bad_argmax);
    CHECKF(c, bad_top == 0, "top logits differ from a stable sort on %d of 3000 rows", bad_top);
    float *big = malloc(sizeof(float) * BIG);
    if (!big) return;
    for (int i = 0; i < BIG; i++) big[i] = (float)emtp_pcg32_uniform(&rng) * 20.0f - 10.0f;
    static const int planted[][2] = {{0, 0}, {BIG - 1, BIG - 1}, {BIG - 7, BIG - 7}, {4099, 4099}, {123457, 17}};
    for (size_t p = 0; p < sizeof planted / sizeof *planted; p++) {
        int at = planted[p][0], twin = planted[p][1];
        float was = big[at], was_twin = big[twin];
        big[at] = big[twin] = 11.0f; /* the maximum at `at`, and again at `twin` when that differs: the first wins */
        int want = at < twin ? at : twin;
        CHECKF(c, emtp_argmax(big, BIG) == want, "planted maximum at %d: argmax %d", want, emtp_argmax(big, BIG));
        big[at] = was;
        big[twin] = was_twin;
    }
    static const int top_at[EMTP_TOP_LOGITS] = {BIG - 3, 64, 200000, 63, 1};
    for (int j = 0; j < EMTP_TOP_LOGITS; j++) big[top_at[j]] = 20.0f - (float)j;
    emtp_round r;
    emtp_top_logits(big, BIG, &r);
    int same = r.n_top == EMTP_TOP_LOGITS;
    for (int j = 0; same && j < EMTP_TOP_LOGITS; j++) same = r.top_ids[j] == top_at[j];
    CHECKF(c, same, "planted top logits: first %d", r.top_ids[0]);
    free(big);
}

static void test_format(checks *c) {
    static const struct {
        double v;
        const char *text;
    } cases[] = {{1.0, "1.0"}, {0.5, "0.5"}, {0.1, "0.1"}, {1e-05, "1e-05"}, {0.0001, "0.0001"},
                 {123456.0, "123456.0"}, {1e16, "1e+16"}, {1.5e16, "1.5e+16"}, {1e22, "1e+22"},
                 {5.765227794647217, "5.765227794647217"}, {-2.5e-7, "-2.5e-07"}, {0.8, "0.8"},
                 {1.0 / 3.0, "0.3333333333333333"}, {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
                 {1234567890123456.0, "1234567890123456.0"}, {0.0, "0.0"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[64];
        emtp_format_double(cases[i].v, buf, sizeof buf);
        CHECKF(c, !strcmp(buf, cases[i].text), "%s != %s", buf, cases[i].text);
    }
}

static const char MANIFEST[] =
    "{\"bos_id\": 2, \"context\": 128, \"draft_len\": 4, \"kv_cache\": {\"kv_cache_k_0\": [1, 1, 128, 32], "
    "\"kv_cache_v_0\": [1, 1, 32, 128]}, \"sliding_window\": 16, \"stop_ids\": [1, 106], \"vocab_size\": 4096, "
    "\"x\": [true, false, null, -1.5e3, \"a\\u00e9\\n\\\"\", {}, []]}";

static void test_json_and_manifest(checks *c) {
    emtp_manifest m;
    emtp_error err;
    int rc = emtp_manifest_parse(MANIFEST, strlen(MANIFEST), &m, &err);
    CHECKF(c, rc == 0, "%s", err.message);
    CHECK(c, m.n_kv == 2 && m.context == 128 && m.kv_shape[1][2] == 32 && m.n_stop == 2 && m.stop_ids[1] == 106);
    CHECK(c, m.vocab_size == 4096 && m.sliding_window == 16 && m.draft_len == 4 && !strncmp(m.model_id, "sha256:", 7));
    emtp_json *root;
    CHECK(c, emtp_json_parse(MANIFEST, strlen(MANIFEST), &root, &err) == 0);
    const emtp_json *x = emtp_json_get(root, "x");
    CHECK(c, x && x->count == 7 && emtp_json_at(x, 3)->number == -1500.0);
    CHECK(c, !strcmp(emtp_json_at(x, 4)->string, "a\xc3\xa9\n\""));
    emtp_json_free(root);
    /* every truncation and a byte flip at every offset: an error or a parse, never a crash */
    size_t n = strlen(MANIFEST);
    char buf[sizeof MANIFEST];
    int errors = 0;
    for (size_t cut = 0; cut < n; cut++) {
        memcpy(buf, MANIFEST, cut);
        rc = emtp_manifest_parse(buf, cut, &m, &err);
        errors += rc == EMTP_EBUNDLE;
    }
    CHECKF(c, errors == (int)n, "%d of %zu truncations rejected", errors, n);
    for (size_t at = 0; at < n; at++) {
        memcpy(buf, MANIFEST, n);
        buf[at] ^= 0x5A;
        rc = emtp_manifest_parse(buf, n, &m, &err);
        CHECK(c, rc == 0 || rc == EMTP_EBUNDLE);
    }
    const char *bad[] = {"[]", "{\"kv_cache\": {}}", "{\"vocab_size\": \"9\"}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(c, emtp_manifest_parse(bad[i], strlen(bad[i]), &m, &err) == EMTP_EBUNDLE);
    unsigned char d[32];
    emtp_sha256((const unsigned char *)"abc", 3, d);
    CHECK(c, d[0] == 0xba && d[1] == 0x78 && d[31] == 0xad);
}

static void test_trace(checks *c) {
    fake f;
    emtp_backend b;
    fake_backend(&f, &b, 200, 3);
    int32_t prompt[2] = {5, 6};
    emtp_config cfg = {2, 5, 1, {0.8, 0, 1.0, 3}, EMTP_KV_HF, {0}};
    emtp_generation g;
    emtp_error err;
    CHECK(c, emtp_generate(&b, prompt, 2, &cfg, &g, &err) == 0);
    FILE *tf = tmpfile();
    CHECK(c, tf && emtp_write_trace(tf, &g, &cfg, "native-c", "fake", &err) == 0);
    if (tf) {
        char line[4096];
        rewind(tf);
        CHECK(c, fgets(line, sizeof line, tf) &&
                     !strcmp(line, "{\"type\":\"header\",\"format\":\"edge-mtp-trace/1\",\"implementation\":\"native-c\","
                                   "\"model\":\"fake\",\"prompt_ids\":[5,6],\"draft_len\":2,\"max_new_tokens\":5,"
                                   "\"sampling\":{\"mode\":\"sample\",\"temperature\":0.8,\"top_k\":0,\"top_p\":1.0,"
                                   "\"seed\":3},\"kv_view\":\"hf\"}\n"));
        int lines = 1;
        while (fgets(line, sizeof line, tf)) lines++;
        CHECK(c, lines == g.n_rounds + 2 && !strncmp(line, "{\"type\":\"summary\",\"tokens\":[", 28));
        fclose(tf);
    }
    emtp_generation_free(&g);
}

/* The same hand-computed cases as tests/test_loop.py test_policy_decisions_by_hand. */
static void test_draft_policy(checks *c) {
    emtp_draft_policy never;
    emtp_draft_policy_defaults(&never);
    CHECK(c, emtp_parse_draft_costs("1,1,2,3,4", &never) == 2 && !emtp_draft_can_pay(&never, 2));
    emtp_draft_state s;
    emtp_error err;
    double rates[EMTP_MAX_DRAFT];
    int probe;
    CHECK(c, emtp_draft_state_init(&s, &never, 2, &err) == 0);
    for (int i = 0; i < 16; i++) emtp_draft_record(&s, 2, 2);
    CHECK(c, emtp_draft_decide(&s, 2, rates, &probe) == 0 && !probe && s.plain_rounds == 0);
    emtp_draft_state_free(&s);

    emtp_draft_policy p;
    emtp_draft_policy_defaults(&p);
    CHECK(c, emtp_parse_draft_costs(" 0.5, 0.5, 2, 2.5 ,3", &p) == 2 && emtp_draft_can_pay(&p, 2));
    int tested[2] = {0, 0}, accepted[2] = {0, 0};
    emtp_draft_estimates(&p, 2, tested, accepted, rates);
    CHECK(c, rates[0] == 0.5 && rates[1] == 0.5 && emtp_draft_best_k(&p, rates, 2) == 0);
    emtp_draft_state_init(&s, &p, 2, &err);
    CHECK(c, emtp_draft_decide(&s, 2, rates, &probe) == 0 && probe && s.plain_rounds == 1);
    for (int i = 0; i < 3; i++) emtp_draft_record_probe(&s, 1);
    CHECK(c, emtp_draft_decide(&s, 2, rates, &probe) == 2 && rates[0] == 0.875 && rates[1] == 0.875);
    CHECK(c, emtp_draft_decide(&s, 1, rates, &probe) == 1);
    emtp_draft_record(&s, 2, 1);
    CHECK(c, s.count[0] == 4 && s.count[1] == 1);
    emtp_draft_state_free(&s);
    emtp_draft_state_init(&s, &p, 2, &err);
    emtp_draft_decide(&s, 2, rates, &probe);
    emtp_draft_record_probe(&s, 0);
    int first = 0;
    for (int r = 2; r < 80 && !first; r++) {
        emtp_draft_decide(&s, 2, rates, &probe);
        if (probe) first = r;
    }
    CHECKF(c, first == 50, "first budget probe at plain round %d", first);
    emtp_draft_state_free(&s);

    emtp_draft_policy one;
    emtp_draft_policy_defaults(&one);
    emtp_parse_draft_costs("1,1,2,2", &one);
    static const int windows[2][3] = {{0, 0, 1}, {1, 0, -1}};
    for (int w = 0; w < 2; w++) {
        emtp_draft_state_init(&s, &one, 1, &err);
        for (int i = 0; i < 3 && windows[w][i] >= 0; i++) emtp_draft_record_probe(&s, windows[w][i]);
        s.probes = 10;
        CHECK(c, emtp_draft_decide(&s, 1, rates, &probe) == 0 && probe == (w == 0));
        CHECK(c, rates[0] == (w == 0 ? 0.375 : 0.5));
        emtp_draft_state_free(&s);
    }
    emtp_draft_policy cheap;
    emtp_draft_policy_defaults(&cheap);
    emtp_parse_draft_costs("0.1,0.1,1,1.2,1.2", &cheap);
    double half[2] = {0.5, 0.5};
    CHECK(c, emtp_draft_best_k(&cheap, half, 2) == 2);
    emtp_draft_state_init(&s, &cheap, 2, &err);
    CHECK(c, emtp_draft_decide(&s, 2, rates, &probe) == 0 && probe); /* slot 1 is tested by a probe first */
    emtp_draft_record_probe(&s, 1);
    CHECK(c, emtp_draft_decide(&s, 2, rates, &probe) == 2);
    emtp_draft_state_free(&s);
    emtp_draft_policy cold;
    emtp_draft_policy_defaults(&cold);
    emtp_parse_draft_costs("1,0.2,2,2.9,3", &cold);
    double nine[2] = {0.9, 0.9};
    CHECK(c, emtp_draft_best_k(&cold, nine, 1) == 0 && emtp_draft_best_k(&cold, nine, 2) == 2);
    cold.first_draft_ms = 0.2;
    CHECK(c, emtp_draft_best_k(&cold, nine, 1) == 1);
    emtp_draft_state_init(&s, &p, 2, &err);
    for (int i = 0; i < 32; i++) emtp_draft_record_probe(&s, i >= 16);
    emtp_draft_decide(&s, 2, rates, &probe);
    CHECK(c, s.count[0] == 16 && rates[0] == (16 + 0.5) / 17.0);
    emtp_draft_state_free(&s);
    CHECK(c, emtp_parse_draft_costs("1,1,0", &p) < 0 && emtp_parse_draft_costs("1,2", &p) < 0 &&
                 emtp_parse_draft_costs("1,1,x", &p) < 0 && emtp_parse_draft_costs("1,1,2,inf", &p) < 0);
}

/* One generation on a fresh fake model (drafter wrong on 1/wrong of the states); `costs` != NULL turns on
 * --draft-len auto with them. Returns 0 with *g filled, else records the failure. */
static int fake_run(checks *c, fake *f, int wrong, emtp_config cfg, const char *costs, const int32_t *prompt, int n,
                    emtp_generation *g) {
    emtp_backend b;
    fake_backend(f, &b, 200, wrong);
    if (costs) {
        emtp_draft_policy_defaults(&cfg.policy);
        emtp_parse_draft_costs(costs, &cfg.policy);
    }
    emtp_error err = {0, ""};
    int rc = emtp_generate(&b, prompt, n, &cfg, g, &err);
    CHECKF(c, rc == 0, "%s", err.message);
    return rc;
}

static int same_tokens(const emtp_generation *a, const emtp_generation *b) {
    return a->n_tokens == b->n_tokens && !memcmp(a->tokens, b->tokens, sizeof(int32_t) * (size_t)a->n_tokens);
}

/* The loop under --draft-len auto on the fake model: greedy tokens of the oracle whatever K is chosen, several K
 * chosen, probes on a drafter that is always wrong, seeded sampling deterministic, and costs at which drafting
 * cannot pay give exactly K = 0's rounds (greedy and sampled: no drafter call, the main stream untouched). */
static void test_auto_loop(checks *c) {
    const char *cheap = "0.1,0.1,1,1.1,1.2,1.3,1.4", *never = "1,1,2,4,6,8,10";
    int32_t prompt[3] = {1, 2, 3}, want[64];
    oracle(prompt, 3, 48, want);
    int seen[5] = {0}, probes = 0;
    fake f;
    emtp_generation g, h;
    for (int wrong = 0; wrong <= 3; wrong++) { /* 0: never wrong */
        emtp_config cfg = {4, 48, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
        if (fake_run(c, &f, wrong, cfg, cheap, prompt, 3, &g)) continue;
        CHECKF(c, g.n_tokens == 48 && !memcmp(g.tokens, want, sizeof(int32_t) * 48), "wrong_every %d", wrong);
        int drafted = 0;
        for (int r = 1; r < g.n_rounds; r++) {
            seen[g.rounds[r].n_drafts]++;
            drafted += g.rounds[r].n_drafts;
            CHECK(c, g.rounds[r].n_rates == 4 && g.rounds[r].rates[0] > 0 && g.rounds[r].rates[0] < 1);
        }
        probes += g.probes;
        CHECK(c, f.drafts == drafted + g.probes); /* a probe is one drafter call */
        emtp_generation_free(&g);
    }
    int distinct = 0;
    for (int k = 0; k <= 4; k++) distinct += seen[k] > 0;
    CHECKF(c, distinct >= 3 && seen[0] && seen[4] && probes > 0, "distinct K %d, probes %d", distinct, probes);
    for (int sample = 0; sample < 2; sample++) {
        emtp_config plain = {0, 30, sample, {0.9, 7, 0.95, 1234}, EMTP_KV_HF, {0}}, autok = plain;
        autok.draft_len = 4;
        if (fake_run(c, &f, 3, plain, NULL, prompt, 3, &g)) continue;
        if (!fake_run(c, &f, 3, autok, never, prompt, 3, &h)) {
            CHECK(c, f.drafts == 0 && h.probes == 0 && h.n_rounds == g.n_rounds && same_tokens(&g, &h));
            emtp_generation_free(&h);
        }
        emtp_generation_free(&g);
    }
    /* sampling with auto: the same seed gives the same tokens */
    emtp_config sampled = {3, 40, 1, {0.9, 7, 0.95, 99}, EMTP_KV_HF, {0}};
    if (!fake_run(c, &f, 2, sampled, "0.1,0.1,1,1.1,1.2,1.3", prompt, 3, &g)) {
        if (!fake_run(c, &f, 2, sampled, "0.1,0.1,1,1.1,1.2,1.3", prompt, 3, &h)) {
            CHECK(c, same_tokens(&g, &h) && g.probes == h.probes);
            emtp_generation_free(&h);
        }
        emtp_generation_free(&g);
    }
    /* no costs: a usage error, nothing leaks */
    emtp_backend b;
    fake_backend(&f, &b, 200, 2);
    emtp_config cfg = {3, 40, 0, {0, 0, 0, 0}, EMTP_KV_HF, {0}};
    emtp_draft_policy_defaults(&cfg.policy);
    emtp_error err = {0, ""};
    CHECK(c, emtp_generate(&b, prompt, 3, &cfg, &g, &err) == EMTP_EUSAGE && strstr(err.message, "costs"));
}

/* emtp_calibrate runs each K as a steady series of rounds from position 1, every draft taken as accepted, and
 * rolls back after each K (the fake refuses a verify anywhere but at the valid length, and a bad drafter view):
 * with K = 3 and 2 measured passes, (1 + 2) passes x 4 Ks x 4 rounds = 48 verifies and 3 x 4 x (0+1+2+3) = 72
 * drafter steps, as draftlen.py's calibrate makes (tests/unit/test_calibrate.py). */
static void test_calibrate(checks *c) {
    fake f;
    emtp_backend b;
    emtp_error err = {0};
    emtp_draft_policy p;
    fake_backend(&f, &b, 64, 0);
    emtp_draft_policy_defaults(&p);
    int rc = emtp_calibrate(&b, 3, 7, 2, &p, &err);
    CHECKF(c, rc == 0, "%s", err.message);
    CHECKF(c, f.verifies == 1 + 48 && f.drafts == 72, "verifies %d, drafter steps %d", f.verifies, f.drafts);
    CHECK(c, f.length == 1 && p.calibrated && p.first_draft_ms > 0 && p.draft_ms > 0);
    for (int d = 1; d <= 3; d++) CHECK(c, p.verify_ms[d] >= p.verify_ms[d - 1] && p.verify_ms[0] > 0);
    fake_backend(&f, &b, 9, 0); /* room for 2 rounds of K = 3 after the prefill, not for 3 */
    rc = emtp_calibrate(&b, 3, 7, 1, &p, &err);
    CHECKF(c, rc == 0 && f.verifies == 1 + 2 * 4 * 2, "%s (verifies %d)", err.message, f.verifies);
    fake_backend(&f, &b, 8, 0);
    CHECK(c, emtp_calibrate(&b, 3, 7, 1, &p, &err) == EMTP_EUSAGE && strstr(err.message, "context of 9, not 8"));
}

int main(void) {
    checks c = {0, 0};
    test_greedy_invariance(&c);
    test_perfect_drafter(&c);
    test_sampling_deterministic(&c);
    test_stops(&c);
    test_top_logits(&c);
    test_row_scans(&c);
    test_top_k_distribution(&c);
    test_errors(&c);
    test_pcg_and_sampling(&c);
    test_views(&c);
    test_format(&c);
    test_json_and_manifest(&c);
    test_trace(&c);
    test_draft_policy(&c);
    test_auto_loop(&c);
    test_calibrate(&c);
    printf("test_core: %d checks, %d failed\n", c.run, c.failed);
    return c.failed ? 1 : 0;
}
