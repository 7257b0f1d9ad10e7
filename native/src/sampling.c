/* Seeded sampling, bit for bit as src/edge_mtp/runtime/sampling.py and docs/sampling.md (PCG32, 53-bit
 * uniforms, float64 distributions with numpy's pairwise sums). The one known gap: numpy's SIMD exp can
 * differ from libm's exp by 1 ulp, which changes a draw only if a uniform falls within ~1e-16 of a CDF
 * boundary. */
#include "edge_mtp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PCG_MULT 6364136223846793005ULL

uint32_t emtp_pcg32_next(emtp_pcg32 *rng) {
    uint64_t old = rng->state;
    rng->state = old * PCG_MULT + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31u));
}

void emtp_pcg32_seed(emtp_pcg32 *rng, uint64_t seed, uint64_t stream) {
    rng->inc = (stream << 1) | 1u;
    rng->state = 0;
    emtp_pcg32_next(rng);
    rng->state += seed;
    emtp_pcg32_next(rng);
}

double emtp_pcg32_uniform(emtp_pcg32 *rng) {
    uint32_t a = emtp_pcg32_next(rng) >> 5;
    uint32_t b = emtp_pcg32_next(rng) >> 6;
    return ((double)a * 67108864.0 + (double)b) / 9007199254740992.0;
}

/* numpy/_core/src/umath/loops_utils.h.src pairwise_sum for float64 (PW_BLOCKSIZE 128). */
double emtp_pairwise_sum(const double *a, ptrdiff_t n) {
    if (n < 8) {
        double res = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        ptrdiff_t i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    ptrdiff_t n2 = n / 2;
    n2 -= n2 % 8;
    return emtp_pairwise_sum(a, n2) + emtp_pairwise_sum(a + n2, n - n2);
}

/* The first index of the largest value, as np.argmax on a row without NaN (a NaN counts only at index 0,
 * where nothing ranks above it; np.argmax would return the first NaN). Two passes: the largest value over
 * 16 independent lanes, then the first index holding it. The lanes carry no dependence from one element to
 * the next, so compilers turn them into vector compares; the one-pass `row[i] > row[best]` scan took
 * 1.2 ms over Gemma's 262144 ids, and a K = 3 round at E2B makes seven (0.14 ms now; benchmarks/README.md). */
int emtp_argmax(const float *row, int n) {
    enum { LANES = 16 };
    if (n <= 0 || isnan(row[0])) return 0;
    float lane[LANES];
    for (int j = 0; j < LANES; j++) lane[j] = -INFINITY;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) lane[j] = row[i + j] > lane[j] ? row[i + j] : lane[j];
    float top = row[0];
    for (int j = 0; j < LANES; j++) top = lane[j] > top ? lane[j] : top;
    for (; i < n; i++) top = row[i] > top ? row[i] : top;
    for (i = 0; i < n; i++)
        if (row[i] == top) return i;
    return 0; /* not reached: top is one of the row's values */
}

int emtp_sampler_init(emtp_sampler *s, const emtp_sampling *cfg, int vocab, emtp_error *err) {
    memset(s, 0, sizeof *s);
    if (!(cfg->temperature > 0) || !(cfg->top_p > 0 && cfg->top_p <= 1) || cfg->top_k < 0 || vocab < 1)
        return emtp_fail(err, EMTP_EUSAGE, "--temperature must be > 0 for sampling and --top-p in (0, 1]");
    s->cfg = *cfg;
    s->n = vocab;
    emtp_pcg32_seed(&s->rng, cfg->seed, EMTP_PCG_STREAM);
    s->order = malloc(sizeof(int) * (size_t)vocab);
    s->kept = malloc(sizeof(double) * (size_t)vocab);
    s->work = malloc(sizeof(double) * (size_t)vocab);
    if (!s->order || !s->kept || !s->work) {
        emtp_sampler_free(s);
        return emtp_fail(err, EMTP_ENOMEM, "out of memory (sampler over %d ids)", vocab);
    }
    return EMTP_OK;
}

void emtp_sampler_free(emtp_sampler *s) {
    free(s->order);
    free(s->kept);
    free(s->work);
    s->order = NULL;
    s->kept = s->work = NULL;
}

/* Sort ids by value descending, ties smaller id first, NaN last (np.lexsort((arange, -x))). In-place merge
 * sort on `order` keyed by x: stable, so starting from id order gives the tie rule. */
static void sort_desc(int *order, int *tmp, const double *x, int n) {
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = emtp_ranks_above(x[order[j]], x[order[i]]) ? order[j++] : order[i++];
            while (i < mid) tmp[k++] = order[i++];
            while (j < hi) tmp[k++] = order[j++];
        }
        memcpy(order, tmp, sizeof(int) * (size_t)n);
    }
}

static int descending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* A value the top_k-th largest of x is at least: the top_k-th largest of its block maxima (top_k blocks each
 * hold a value that high), as Python's `_top_k_floor`; `maxima` has room for n doubles. 0 when x has NaN. */
static int top_k_floor(const double *x, int n, int top_k, double *maxima, double *floor_out) {
    int blocks = top_k > 4096 ? top_k : 4096, step = n / blocks > 1 ? n / blocks : 1, nb = 0;
    for (int lo = 0; lo < n; lo += step, nb++) {
        double m = x[lo];
        for (int i = lo + 1; i < lo + step && i < n; i++) m = x[i] > m || isnan(x[i]) ? x[i] : m;
        if (isnan(m)) return 0;
        maxima[nb] = m;
    }
    if (nb < top_k) return 0;
    qsort(maxima, (size_t)nb, sizeof *maxima, descending);
    *floor_out = maxima[top_k - 1];
    return 1;
}

int emtp_top_k_candidates(const double *x, int n, int top_k, double *scratch, int *ids) {
    double floor_value;
    if (top_k <= 0 || top_k >= n || !top_k_floor(x, n, top_k, scratch, &floor_value)) return 0;
    int c = 0;
    for (int i = 0; i < n; i++)
        if (x[i] >= floor_value) ids[c++] = i;
    return c >= top_k ? c : 0;
}

/* s->order[0..] = ids by value descending, ties smaller id first, NaN last (np.lexsort((arange, -x)));
 * returns how many lead the order meaningfully: top_k, or n. With top_k only emtp_top_k_candidates are
 * sorted: a merge sort of Gemma's 262144 logits for every draft and verified position is what sampling cost. */
static int rank(emtp_sampler *s, const double *x, int n) {
    int top_k = s->cfg.top_k, *tmp = (int *)(void *)s->work; /* work has room for n doubles >= n ints */
    int c = emtp_top_k_candidates(x, n, top_k, s->kept, s->order);
    if (c) {
        sort_desc(s->order, tmp, x, c);
        return top_k;
    }
    for (int i = 0; i < n; i++) s->order[i] = i;
    sort_desc(s->order, tmp, x, n);
    return top_k && top_k < n ? top_k : n;
}

void emtp_distribution(emtp_sampler *s, const float *logits, double *probs) {
    int n = s->n;
    double *x = probs; /* x lives in probs until the end (probs is rebuilt from kept) */
    for (int i = 0; i < n; i++) x[i] = (double)logits[i] / s->cfg.temperature;
    int m = rank(s, x, n);
    double top = x[s->order[0]];
    for (int i = 0; i < m; i++) s->kept[i] = exp(x[s->order[i]] - top);
    double total = emtp_pairwise_sum(s->kept, m);
    for (int i = 0; i < m; i++) s->kept[i] /= total;
    if (s->cfg.top_p < 1.0) {
        double run = 0.0;
        int cut = m; /* searchsorted(cumsum, top_p) + 1, capped at m */
        for (int i = 0; i < m; i++) {
            run += s->kept[i];
            if (run >= s->cfg.top_p) {
                cut = i + 1;
                break;
            }
        }
        double sub = emtp_pairwise_sum(s->kept, cut);
        for (int i = 0; i < cut; i++) s->kept[i] /= sub;
        m = cut;
    }
    for (int i = 0; i < n; i++) probs[i] = 0.0;
    for (int i = 0; i < m; i++) probs[s->order[i]] = s->kept[i];
}

int emtp_draw(const double *probs, int n, double u, double *work) {
    double run = 0.0;
    int last_nonzero = 0;
    for (int i = 0; i < n; i++) {
        run += probs[i];
        work[i] = run;
        if (probs[i] != 0.0) last_nonzero = i;
    }
    double v = u * work[n - 1];
    int idx = n;
    for (int i = 0; i < n; i++)
        if (work[i] > v) {
            idx = i;
            break;
        }
    return idx < last_nonzero ? idx : last_nonzero;
}

int emtp_sample(emtp_sampler *s, const double *probs) {
    return emtp_draw(probs, s->n, emtp_pcg32_uniform(&s->rng), s->work);
}

int emtp_accept(emtp_sampler *s, double p, double q) {
    return emtp_pcg32_uniform(&s->rng) * q < p;
}

void emtp_residual(const double *p, const double *q, int n, double *out) {
    for (int i = 0; i < n; i++) {
        double d = p[i] - q[i];
        out[i] = d > 0.0 ? d : 0.0; /* np.maximum(d, 0.0); d is never NaN here */
    }
    double total = emtp_pairwise_sum(out, n);
    if (total > 0)
        for (int i = 0; i < n; i++) out[i] /= total;
    else
        memcpy(out, p, sizeof(double) * (size_t)n);
}
