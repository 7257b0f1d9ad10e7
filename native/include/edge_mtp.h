/* edge-mtp native core: the speculative decoding loop (draft -> verify -> accept -> roll back) in C11.
 *
 * The loop mirrors src/edge_mtp/runtime/loop.py step for step and writes the step trace of
 * docs/trace.md. It reaches models only through `emtp_backend` (a small vtable), so the
 * LiteRT backend (litert.c, libLiteRt.so through dlopen), the fake model of the tests and later the
 * JNI/Swift layers share one loop. No globals; C11 + libc (+ dlopen for the LiteRT backend only).
 * Every fallible call returns 0 or an EMTP_E* code and fills an `emtp_error`.
 */
#ifndef EDGE_MTP_H
#define EDGE_MTP_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------------------------ */
enum {
    EMTP_OK = 0,
    EMTP_EUSAGE = 1,   /* bad arguments (CLI exit code 2, like the Python CLI) */
    EMTP_EIO = 2,      /* cannot read or write a file */
    EMTP_EBUNDLE = 3,  /* the .litertlm container or its manifest is malformed */
    EMTP_ELITERT = 4,  /* libLiteRt.so missing, or one of its calls failed */
    EMTP_ENOMEM = 5,
    EMTP_ESTATE = 6    /* the backend was driven inconsistently (a bug) */
};

typedef struct emtp_error {
    int code;
    char message[512];
} emtp_error;

/* Sets err (if not NULL) and returns code. */
int emtp_fail(emtp_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- sampling (runtime/sampling.py, docs/sampling.md) ------------------------------------------ */
typedef struct emtp_pcg32 {
    uint64_t state, inc;
} emtp_pcg32;

void emtp_pcg32_seed(emtp_pcg32 *rng, uint64_t seed, uint64_t stream);
uint32_t emtp_pcg32_next(emtp_pcg32 *rng);
double emtp_pcg32_uniform(emtp_pcg32 *rng); /* 53 bits from two outputs, as numpy */

#define EMTP_PCG_STREAM 54u

typedef struct emtp_sampling {
    double temperature; /* > 0 */
    int top_k;          /* 0 = off */
    double top_p;       /* 1.0 = off */
    uint64_t seed;
} emtp_sampling;

/* Workspace for distributions over a vocabulary of n ids. */
typedef struct emtp_sampler {
    emtp_sampling cfg;
    emtp_pcg32 rng;
    int n;
    int *order;     /* n */
    double *kept;   /* n */
    double *work;   /* n */
} emtp_sampler;

int emtp_sampler_init(emtp_sampler *s, const emtp_sampling *cfg, int vocab, emtp_error *err);
void emtp_sampler_free(emtp_sampler *s);
/* probs[n] = the processed distribution of a logit row (temperature, top-k, top-p, softmax). */
void emtp_distribution(emtp_sampler *s, const float *logits, double *probs);
/* Inverse-CDF draw in id order for a given uniform u; never an id of probability 0. */
int emtp_draw(const double *probs, int n, double u, double *work);
int emtp_sample(emtp_sampler *s, const double *probs);
int emtp_accept(emtp_sampler *s, double p, double q);
/* out = norm(max(p - q, 0)), or p when that is all zero. */
void emtp_residual(const double *p, const double *q, int n, double *out);
/* numpy's pairwise summation (np.sum of a contiguous float64 array), bit for bit. */
double emtp_pairwise_sum(const double *a, ptrdiff_t n);
int emtp_argmax(const float *row, int n);
/* The one ranking rule of the top list and of sampling: a ranks above b if larger, NaN last (numpy's sort
 * order); equal values keep id order in both, which visit ids in order. Floats convert to double exactly. */
static inline int emtp_ranks_above(double a, double b) {
    return a > b || (isnan(b) && !isnan(a));
}
/* Sampling's top-k shortcut: the ids (in id order, into `ids`, room for n) whose value is at or above a floor
 * the top_k-th largest cannot be below (the top_k-th largest block maximum); their count, or 0 when the full
 * sort must decide (top_k not in 1..n-1, NaN in x, fewer than top_k at or above the floor). `scratch`: n doubles. */
int emtp_top_k_candidates(const double *x, int n, int top_k, double *scratch, int *ids);

/* ---- backend vtable ---------------------------------------------------------------------------- */
typedef struct emtp_views {
    int sliding_lo, sliding_hi; /* inclusive slot ranges */
    int full_lo, full_hi;
} emtp_views;

enum { EMTP_KV_HF = 0, EMTP_KV_CLEAN = 1 };

/* The views of a round that starts with `length` known tokens (runtime/views.py drafter_views). */
emtp_views emtp_drafter_views(int prev_first, int prev_last, int length, int window, int mode);

typedef struct emtp_backend_ops {
    /* Prompt at positions 0..n-1; logits [V] and hidden [H] of the last position. */
    int (*prefill)(void *self, const int32_t *tokens, int n, float *logits, float *hidden, emtp_error *err);
    /* tokens at start..start+n-1 (any n >= 1); logits [n*V], hidden [n*H]. */
    int (*verify)(void *self, const int32_t *tokens, int n, int start, float *logits, float *hidden,
                  emtp_error *err);
    /* Only the first `length` positions are valid now. */
    void (*rollback)(void *self, int length);
    /* One drafter step: logits [V], carry_out [H]. */
    int (*draft)(void *self, int32_t token, const float *carry, int position, const emtp_views *views,
                 float *logits, float *carry_out, emtp_error *err);
    void (*destroy)(void *self);
} emtp_backend_ops;

#define EMTP_MAX_STOP 16

typedef struct emtp_backend {
    const emtp_backend_ops *ops;
    void *self;
    const char *name;        /* e.g. "litert-c", "fake" */
    char model_id[80];       /* trace `model` */
    int vocab_size, hidden_size, context, sliding_window;
    int max_verify;          /* tokens the one-call verify graph takes (K_max + 1); informational */
    int default_draft_len;   /* the bundle's K */
    int has_drafter;
    int32_t stop_ids[EMTP_MAX_STOP];
    int n_stop;
    double graph_ms;         /* running total of time inside graph runs (0 if the backend does not time) */
} emtp_backend;

void emtp_backend_destroy(emtp_backend *b);

/* ---- adaptive draft length, `--draft-len auto` (draftlen.c, runtime/draftlen.py) ----------------- */
#define EMTP_MAX_DRAFT 64
#define EMTP_MAX_WINDOW 256
#define EMTP_PROBE_STREAM 55u /* sampling: the probes' own PCG32 stream */

typedef struct emtp_draft_policy {
    int enabled;        /* 0 = every round drafts cfg.draft_len (fixed K) */
    int window;         /* test outcomes kept per draft slot */
    double prior, prior_weight, probe_budget;
    int lookahead;
    double first_draft_ms; /* a round's first drafter step (after a verify; also a probe's cost) */
    double draft_ms;       /* each further drafter step */
    double verify_ms[EMTP_MAX_DRAFT + 1]; /* verify_ms[K]: a verify of K+1 tokens, K = 0..draft_len */
    int calibrated;     /* the costs were timed here (emtp_calibrate), not given */
} emtp_draft_policy;

/* The default parameters (as draftlen.py AutoDraft), enabled, costs unset. */
void emtp_draft_policy_defaults(emtp_draft_policy *p);
/* "F,D,V1,...,V(K+1)" (ms, each > 0) into p's costs; returns K, or -1 when the text is not that. */
int emtp_parse_draft_costs(const char *text, emtp_draft_policy *p);
/* a_1..a_k from tested[j] / accepted[j] counts, shrunk slot by slot toward the prior. */
void emtp_draft_estimates(const emtp_draft_policy *p, int k, const int *tested, const int *accepted, double *rates);
/* argmax_{K <= k_max} E(K) / cost(K), ties to the smaller K. */
int emtp_draft_best_k(const emtp_draft_policy *p, const double *rates, int k_max);
/* Whether an always-right drafter beats plain decoding at some K <= k_max. */
int emtp_draft_can_pay(const emtp_draft_policy *p, int k_max);

typedef struct emtp_draft_state {
    const emtp_draft_policy *policy;
    int k;                       /* draft slots (cfg.draft_len) */
    unsigned char *ring;         /* k * window outcomes, slot-major */
    int *head, *count;           /* per slot: next write index, outcomes held */
    int probes, probes_accepted, plain_rounds;
} emtp_draft_state;

int emtp_draft_state_init(emtp_draft_state *s, const emtp_draft_policy *p, int k, emtp_error *err);
void emtp_draft_state_free(emtp_draft_state *s);
/* K for a round in which at most k_max drafts fit; *probe = run a probe; rates[k] = the estimates used. */
int emtp_draft_decide(emtp_draft_state *s, int k_max, double *rates, int *probe);
void emtp_draft_record(emtp_draft_state *s, int drafts, int accepted);
void emtp_draft_record_probe(emtp_draft_state *s, int accepted);
/* Time the backend as a steady run of rounds uses it (draftlen.py calibrate): after a one-token prefill of
 * `token`, 1 + `reps` passes over K = 0..k (interleaved), each a run of up to 4 greedy rounds of K drafts from
 * position 1 with every draft taken as accepted, the second half timed; medians into p's costs, verify_ms
 * made non-decreasing (calibrated = 1). */
int emtp_calibrate(emtp_backend *b, int k, int32_t token, int reps, emtp_draft_policy *p, emtp_error *err);

/* ---- the loop (runtime/loop.py, docs/loop.md) -------------------------------------------------- */
#define EMTP_TOP_LOGITS 5

typedef struct emtp_config {
    int draft_len;      /* K; 0 = plain decoding; with policy.enabled: the most drafts a round may take */
    int max_new_tokens;
    int sample;         /* 0 = greedy */
    emtp_sampling sampling;
    int kv_view;        /* EMTP_KV_HF or EMTP_KV_CLEAN */
    emtp_draft_policy policy; /* `--draft-len auto` when enabled (zeroed = fixed K) */
} emtp_config;

typedef struct emtp_round {
    int index, position;
    int n_drafts, n_target, n_emitted, accepted;
    int32_t *drafts, *target, *emitted; /* one allocation, owned by the round */
    int n_top;
    int32_t top_ids[EMTP_TOP_LOGITS];
    float top_values[EMTP_TOP_LOGITS];
    int has_draft_ms;
    double ms_draft, ms_verify, ms_graph; /* ms_graph: backend graph time inside this round */
    double *rates;      /* auto: the acceptance estimates the round's K came from (n_rates), owned */
    int n_rates;
    int has_probe, probe_accepted; /* auto: a K = 0 round that tested one draft without verifying it */
    int32_t probe_draft;
} emtp_round;

/* The round's top list: the EMTP_TOP_LOGITS largest logits of `row`, larger first, the smaller id first among
 * equals, NaN last (the order of Python's stable sort of -row). */
void emtp_top_logits(const float *row, int n, emtp_round *r);

typedef struct emtp_generation {
    int32_t *prompt;
    int n_prompt;
    int32_t *tokens;
    int n_tokens, cap_tokens;
    emtp_round *rounds;
    int n_rounds, cap_rounds;
    const char *stop; /* "eos" | "max_new_tokens" | "context" */
    int has_probes, probes, probes_accepted; /* auto */
} emtp_generation;

/* Runs the loop; on success *out owns its memory (emtp_generation_free), on failure nothing leaks. */
int emtp_generate(emtp_backend *b, const int32_t *prompt, int n_prompt, const emtp_config *cfg,
                  emtp_generation *out, emtp_error *err);
void emtp_generation_free(emtp_generation *g);

/* ---- trace (runtime/trace.py, docs/trace.md) --------------------------------------------------- */
int emtp_write_trace(FILE *f, const emtp_generation *g, const emtp_config *cfg, const char *implementation,
                     const char *model, emtp_error *err);
int emtp_write_trace_file(const char *path, const emtp_generation *g, const emtp_config *cfg,
                          const char *implementation, const char *model, emtp_error *err);
/* The summary object (one line, no newline), as in the trace and `--json`. */
int emtp_write_summary(FILE *f, const emtp_generation *g, int draft_len, emtp_error *err);
/* The summary line's fields; per_slot has cfg->draft_len entries (caller-allocated). */
void emtp_summary(const emtp_generation *g, int draft_len, int *drafted, int *accepted, double *per_slot,
                  double *mean_emitted);
/* Shortest text that reads back as the same double (like Python's repr); buf >= 32 bytes. */
void emtp_format_double(double v, char *buf, size_t size);

/* ---- JSON (a small DOM reader, enough for the manifest) ---------------------------------------- */
enum { EMTP_JSON_NULL, EMTP_JSON_BOOL, EMTP_JSON_NUMBER, EMTP_JSON_STRING, EMTP_JSON_ARRAY, EMTP_JSON_OBJECT };

typedef struct emtp_json {
    int type;
    double number;       /* NUMBER, BOOL (0/1) */
    char *string;        /* STRING (NUL-terminated, unescaped); for members of an OBJECT: see `key` */
    char *key;           /* set on members of an object */
    struct emtp_json *child; /* first element/member */
    struct emtp_json *next;  /* next sibling */
    int count;           /* elements / members */
} emtp_json;

int emtp_json_parse(const char *text, size_t n, emtp_json **root, emtp_error *err);
void emtp_json_free(emtp_json *root);
const emtp_json *emtp_json_get(const emtp_json *object, const char *key);
const emtp_json *emtp_json_at(const emtp_json *array, int index);

/* ---- the .litertlm container (src/edge_mtp/litertlm.py) ---------------------------------------- */
typedef struct emtp_section {
    char kind[64];       /* model_type ("tf_lite_prefill_decode", ...) or the data type name */
    uint64_t begin, end;
    int is_manifest;     /* tagged edge_mtp=manifest */
} emtp_section;

typedef struct emtp_bundle {
    char *path;
    uint64_t size;
    emtp_section *sections;
    int n_sections;
} emtp_bundle;

#define EMTP_MAX_KV 64

typedef struct emtp_manifest {
    int n_kv;
    char kv_names[EMTP_MAX_KV][48];
    int kv_rank[EMTP_MAX_KV];
    int kv_shape[EMTP_MAX_KV][4];
    int32_t stop_ids[EMTP_MAX_STOP];
    int n_stop;
    int sliding_window, vocab_size, draft_len;
    int context; /* kv_cache_k_0's third dimension */
    char model_id[80]; /* "sha256:" + the manifest's sha256, first 16 hex digits */
} emtp_manifest;

int emtp_bundle_open(const char *path, emtp_bundle *b, emtp_error *err);
void emtp_bundle_close(emtp_bundle *b);
const emtp_section *emtp_bundle_find(const emtp_bundle *b, const char *kind);
int emtp_bundle_read(const emtp_bundle *b, const emtp_section *s, unsigned char **data, size_t *size,
                     emtp_error *err);
int emtp_bundle_manifest(const emtp_bundle *b, emtp_manifest *m, emtp_error *err);
int emtp_manifest_parse(const char *json, size_t n, emtp_manifest *m, emtp_error *err);
void emtp_sha256(const unsigned char *data, size_t n, unsigned char out[32]);

/* ---- the LiteRT backend (litert.c) ------------------------------------------------------------- */
typedef struct emtp_litert_options {
    const char *library; /* path of libLiteRt.so; NULL = $EDGE_MTP_LITERT_LIB, then the build default */
    int threads;         /* CPU threads of LiteRT's XNNPACK; 0 = LiteRT's own default */
} emtp_litert_options;

int emtp_litert_open(const char *bundle_path, const emtp_litert_options *opts, emtp_backend *out,
                     emtp_error *err);

#ifdef __cplusplus
}
#endif
#endif
