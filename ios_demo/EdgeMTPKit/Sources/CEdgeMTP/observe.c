/* See include/emtp_observe.h. */
#include "emtp_observe.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct emtp_observer {
    emtp_backend *inner;
    emtp_backend *outer; /* the struct emtp_generate reads graph_ms from */
    emtp_progress_fn on_progress;
    emtp_phase_fn on_phase;
    void *context;
    atomic_int cancelled;
    int n_prompt;
    int round;            /* rounds verified so far */
    int in_draft;
    int verify_start, verify_n;
    int32_t *seq;         /* the last verify call's tokens */
    int cap_seq;
    int32_t *known;       /* generated ids known to be final */
    int n_known, cap_known, reported;
};

static void phase(emtp_observer *o, int which, int begin) {
    if (o->on_phase) o->on_phase(o->context, which, begin, o->round + (which == EMTP_PHASE_PREFILL ? 0 : 1));
}

static void sync_graph(emtp_observer *o) {
    o->outer->graph_ms = o->inner->graph_ms;
}

static int check_cancel(emtp_observer *o, emtp_error *err) {
    if (atomic_load(&o->cancelled)) return emtp_fail(err, EMTP_ECANCELLED, "cancelled");
    return EMTP_OK;
}

static int grow(int32_t **buf, int *cap, int need) {
    if (need <= *cap) return 0;
    int c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    int32_t *p = realloc(*buf, sizeof(int32_t) * (size_t)c);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static int know(emtp_observer *o, const int32_t *ids, int n) {
    if (n <= 0) return 0;
    if (grow(&o->known, &o->cap_known, o->n_known + n)) return -1;
    memcpy(o->known + o->n_known, ids, sizeof(int32_t) * (size_t)n);
    o->n_known += n;
    return 0;
}

static int ob_prefill(void *self, const int32_t *tokens, int n, float *logits, float *hidden, emtp_error *err) {
    emtp_observer *o = self;
    int rc = check_cancel(o, err);
    if (rc) return rc;
    o->n_prompt = n;
    phase(o, EMTP_PHASE_PREFILL, 1);
    rc = o->inner->ops->prefill(o->inner->self, tokens, n, logits, hidden, err);
    sync_graph(o);
    phase(o, EMTP_PHASE_PREFILL, 0);
    return rc;
}

static int ob_draft(void *self, int32_t token, const float *carry, int position, const emtp_views *views,
                    float *logits, float *carry_out, emtp_error *err) {
    emtp_observer *o = self;
    int rc = check_cancel(o, err);
    if (rc) return rc;
    if (!o->in_draft) {
        o->in_draft = 1;
        phase(o, EMTP_PHASE_DRAFT, 1);
    }
    rc = o->inner->ops->draft(o->inner->self, token, carry, position, views, logits, carry_out, err);
    sync_graph(o);
    return rc;
}

static int ob_verify(void *self, const int32_t *tokens, int n, int start, float *logits, float *hidden,
                     emtp_error *err) {
    emtp_observer *o = self;
    if (o->in_draft) {
        o->in_draft = 0;
        phase(o, EMTP_PHASE_DRAFT, 0);
    }
    int rc = check_cancel(o, err);
    if (rc) return rc;
    /* tokens[0] sits at `start`: the previous round's last emitted id, final from now on */
    if (start - o->n_prompt == o->n_known && know(o, tokens, 1))
        return emtp_fail(err, EMTP_ENOMEM, "out of memory (observer)");
    if (grow(&o->seq, &o->cap_seq, n)) return emtp_fail(err, EMTP_ENOMEM, "out of memory (observer)");
    memcpy(o->seq, tokens, sizeof(int32_t) * (size_t)n);
    o->verify_start = start;
    o->verify_n = n;
    phase(o, EMTP_PHASE_VERIFY, 1);
    rc = o->inner->ops->verify(o->inner->self, tokens, n, start, logits, hidden, err);
    sync_graph(o);
    phase(o, EMTP_PHASE_VERIFY, 0);
    return rc;
}

static void ob_rollback(void *self, int length) {
    emtp_observer *o = self;
    o->inner->ops->rollback(o->inner->self, length);
    if (o->verify_n <= 0) return;
    int accepted = length - o->verify_start - 1;
    if (accepted < 0) accepted = 0;
    if (accepted > o->verify_n - 1) accepted = o->verify_n - 1;
    o->round++;
    know(o, o->seq + 1, accepted); /* on ENOMEM the report is just shorter */
    emtp_progress p = {o->round, o->verify_start, o->verify_n - 1, accepted, o->known + o->reported,
                       o->n_known - o->reported, o->n_known};
    o->reported = o->n_known;
    o->verify_n = 0;
    if (o->on_progress) o->on_progress(o->context, &p);
}

static void ob_destroy(void *self) {
    (void)self; /* the inner backend belongs to the caller */
}

static const emtp_backend_ops observer_ops = {ob_prefill, ob_verify, ob_rollback, ob_draft, ob_destroy};

int emtp_observer_create(emtp_backend *inner, emtp_progress_fn on_progress, emtp_phase_fn on_phase,
                         void *context, emtp_backend *out, emtp_observer **observer, emtp_error *err) {
    emtp_observer *o = calloc(1, sizeof *o);
    if (!o) return emtp_fail(err, EMTP_ENOMEM, "out of memory (observer)");
    o->inner = inner;
    o->outer = out;
    o->on_progress = on_progress;
    o->on_phase = on_phase;
    o->context = context;
    atomic_init(&o->cancelled, 0);
    *out = *inner;
    out->ops = &observer_ops;
    out->self = o;
    *observer = o;
    return EMTP_OK;
}

void emtp_observer_reset(emtp_observer *o) {
    o->n_prompt = o->round = o->in_draft = o->verify_start = o->verify_n = 0;
    o->n_known = o->reported = 0;
    atomic_store(&o->cancelled, 0);
    o->outer->graph_ms = o->inner->graph_ms;
}

void emtp_observer_cancel(emtp_observer *o) {
    atomic_store(&o->cancelled, 1);
}

int emtp_observer_cancelled(emtp_observer *o) {
    return atomic_load(&o->cancelled);
}

void emtp_observer_free(emtp_observer *o) {
    if (!o) return;
    free(o->seq);
    free(o->known);
    free(o);
}
