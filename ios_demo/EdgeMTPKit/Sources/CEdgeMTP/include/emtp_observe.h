/* A pass-through backend for the Swift layer (ios_demo/EdgeMTPKit): it forwards every call of
 * `emtp_backend_ops` to the real backend unchanged and reports, as the loop runs,
 *   - progress after each verified round (drafted, accepted, the generated tokens now known to be final),
 *   - phase intervals (prefill, draft, verify) for os_signpost / android.os.Trace style instrumentation,
 * and lets another thread cancel a generation (the next draft/verify call fails with "cancelled").
 * The loop (native/src/loop.c) is not changed: what it decided is read back from the calls it makes
 * (verify's first token is the previous round's bonus token, rollback(q + n + 1) says n drafts were kept).
 * Tokens of the last round are only known from the returned emtp_generation; the Swift layer reports them. */
#ifndef EMTP_OBSERVE_H
#define EMTP_OBSERVE_H

#include "edge_mtp.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { EMTP_PHASE_PREFILL = 0, EMTP_PHASE_DRAFT = 1, EMTP_PHASE_VERIFY = 2 };
enum { EMTP_ECANCELLED = 100 };

typedef struct emtp_progress {
    int round;                /* index of the round that was just verified (1, 2, ...) */
    int position;             /* its position q */
    int drafted, accepted;    /* drafts verified, leading drafts kept */
    const int32_t *new_tokens; /* generated ids that became final since the previous report */
    int n_new_tokens;
    int n_tokens;             /* generated ids final so far (prompt excluded) */
} emtp_progress;

typedef void (*emtp_progress_fn)(void *context, const emtp_progress *progress);
/* begin = 1 at the start of a phase interval, 0 at its end; round as in emtp_progress (0 = prefill). */
typedef void (*emtp_phase_fn)(void *context, int phase, int begin, int round);

typedef struct emtp_observer emtp_observer;

/* Wraps `inner` (not owned: destroy it yourself, after the observer). `out` is the backend to give
 * emtp_generate; it copies inner's metadata. Callbacks may be NULL. */
int emtp_observer_create(emtp_backend *inner, emtp_progress_fn on_progress, emtp_phase_fn on_phase,
                         void *context, emtp_backend *out, emtp_observer **observer, emtp_error *err);
/* Resets the per-generation state; call before each emtp_generate with `out`. */
void emtp_observer_reset(emtp_observer *o);
/* Thread-safe: makes the running (or next) generation fail with EMTP_ECANCELLED. */
void emtp_observer_cancel(emtp_observer *o);
int emtp_observer_cancelled(emtp_observer *o);
void emtp_observer_free(emtp_observer *o);

#ifdef __cplusplus
}
#endif
#endif
