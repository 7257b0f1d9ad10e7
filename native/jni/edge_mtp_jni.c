/* JNI bridge: the Kotlin class dev.edgemtp.core.NativeCore (android_demo/core) -> the C core.
 *
 * The same file is built by the Android NDK (android_demo/app/src/main/cpp/CMakeLists.txt) and, for the
 * JVM tests on a desktop, by gcc against the JDK's jni.h (android_demo/scripts/jvm_test.sh). It adds no
 * logic to the loop: `generate` runs emtp_generate() on a thin pass-through backend that reports
 * progress to a Kotlin listener after every round (for live tokens/s and acceptance) and can cancel the
 * run, and converts the result into a dev.edgemtp.core.RawGeneration.
 *
 * Progress without touching loop.c: at verify(seq, n, start) the token seq[0] at `start` is final; at
 * the rollback(length) that ends a round, the drafts seq[1 .. length-start-1] are accepted. So the
 * listener gets every token except each round's bonus token, which arrives one round later (as the next
 * verify's seq[0]); the final list comes with the result. Counts (`generated`, drafted, accepted) are exact
 * at every call.
 *
 * On Android the rounds also emit ATrace sections "prefill", "draft", "verify" (the Kotlin side wraps
 * the whole call in "generate"), which Perfetto shows as app trace sections (profiling/README.md).
 */
#include <jni.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edge_mtp.h"

#ifdef __ANDROID__
#include <android/trace.h>
#define SECTION_BEGIN(name) ATrace_beginSection(name)
#define SECTION_END() ATrace_endSection()
#else
#define SECTION_BEGIN(name) ((void)0)
#define SECTION_END() ((void)0)
#endif

#define CLASS(name) "dev/edgemtp/core/" name
#define JNI_FN(name) Java_dev_edgemtp_core_NativeCore_##name
#define EMTP_CANCELLED (-1) /* NativeException code of a run the listener stopped */

typedef struct handle {
    emtp_backend backend; /* owned; its address must not change (the LiteRT backend points back to it) */
} handle;

static void throw_native(JNIEnv *env, int code, const char *message) {
    if ((*env)->ExceptionCheck(env)) return; /* keep the first (e.g. the listener's own) exception */
    jclass cls = (*env)->FindClass(env, CLASS("NativeException"));
    if (!cls) return;
    jmethodID ctor = (*env)->GetMethodID(env, cls, "<init>", "(ILjava/lang/String;)V");
    jstring msg = (*env)->NewStringUTF(env, message);
    if (!ctor || !msg) return;
    jobject ex = (*env)->NewObject(env, cls, ctor, (jint)code, msg);
    if (ex) (*env)->Throw(env, (jthrowable)ex);
}

static handle *get_handle(JNIEnv *env, jlong h) {
    if (!h) throw_native(env, EMTP_ESTATE, "the native core is closed");
    return (handle *)(intptr_t)h;
}

JNIEXPORT jlong JNICALL JNI_FN(nativeOpen)(JNIEnv *env, jclass cls, jstring jbundle, jstring jlib) {
    (void)cls;
    const char *bundle = jbundle ? (*env)->GetStringUTFChars(env, jbundle, NULL) : NULL;
    const char *lib = jlib ? (*env)->GetStringUTFChars(env, jlib, NULL) : NULL;
    handle *h = calloc(1, sizeof *h);
    emtp_error err = {0, ""};
    int rc = EMTP_OK;
    if (!bundle) {
        rc = emtp_fail(&err, EMTP_EUSAGE, "no bundle path");
    } else if (!h) {
        rc = emtp_fail(&err, EMTP_ENOMEM, "out of memory");
    } else {
        long cores = sysconf(_SC_NPROCESSORS_ONLN); /* LiteRT's own default ran E2B's decode 1.4x slower than 2 threads */
        emtp_litert_options opts = {lib, cores > 4 ? 4 : cores > 0 ? (int)cores : 0};
        rc = emtp_litert_open(bundle, &opts, &h->backend, &err);
    }
    if (bundle) (*env)->ReleaseStringUTFChars(env, jbundle, bundle);
    if (lib) (*env)->ReleaseStringUTFChars(env, jlib, lib);
    if (rc) {
        free(h);
        throw_native(env, rc, err.message);
        return 0;
    }
    return (jlong)(intptr_t)h;
}

JNIEXPORT void JNICALL JNI_FN(nativeClose)(JNIEnv *env, jclass cls, jlong jh) {
    (void)env;
    (void)cls;
    handle *h = (handle *)(intptr_t)jh;
    if (!h) return;
    emtp_backend_destroy(&h->backend);
    free(h);
}

/* [vocab, hidden, context, sliding_window, max_verify, default_draft_len, has_drafter] */
JNIEXPORT jintArray JNICALL JNI_FN(nativeInfo)(JNIEnv *env, jclass cls, jlong jh) {
    (void)cls;
    handle *h = get_handle(env, jh);
    if (!h) return NULL;
    const emtp_backend *b = &h->backend;
    jint v[7] = {b->vocab_size, b->hidden_size, b->context, b->sliding_window, b->max_verify,
                 b->default_draft_len, b->has_drafter};
    jintArray out = (*env)->NewIntArray(env, 7);
    if (out) (*env)->SetIntArrayRegion(env, out, 0, 7, v);
    return out;
}

JNIEXPORT jintArray JNICALL JNI_FN(nativeStopIds)(JNIEnv *env, jclass cls, jlong jh) {
    (void)cls;
    handle *h = get_handle(env, jh);
    if (!h) return NULL;
    jintArray out = (*env)->NewIntArray(env, h->backend.n_stop);
    if (out) (*env)->SetIntArrayRegion(env, out, 0, h->backend.n_stop, (const jint *)h->backend.stop_ids);
    return out;
}

/* 0: model id (trace `model`), 1: backend name */
JNIEXPORT jstring JNICALL JNI_FN(nativeString)(JNIEnv *env, jclass cls, jlong jh, jint which) {
    (void)cls;
    handle *h = get_handle(env, jh);
    if (!h) return NULL;
    return (*env)->NewStringUTF(env, which == 0 ? h->backend.model_id : (h->backend.name ? h->backend.name : ""));
}

/* ---- the pass-through backend that reports progress ------------------------------------------- */
typedef struct progress {
    emtp_backend *inner;
    emtp_backend *outer; /* the struct the loop reads graph_ms from */
    JNIEnv *env;
    jobject listener;
    jmethodID on_round;
    int n_prompt;
    int next_pos; /* next position whose token the listener has not had */
    int start, n_seq;
    int32_t seq[66];
    int rounds, cancelled;
} progress;

/* Calls listener.onRound(round, generated, drafted, accepted, newTokens); false = cancel. */
static int report(progress *p, int generated, int drafted, int accepted, const int32_t *ids, int n_ids) {
    if (!p->listener) return 1;
    JNIEnv *env = p->env;
    jintArray arr = (*env)->NewIntArray(env, n_ids);
    if (!arr) return 0;
    if (n_ids) (*env)->SetIntArrayRegion(env, arr, 0, n_ids, (const jint *)ids);
    jboolean go = (*env)->CallBooleanMethod(env, p->listener, p->on_round, (jint)p->rounds, (jint)generated,
                                            (jint)drafted, (jint)accepted, arr);
    (*env)->DeleteLocalRef(env, arr);
    if ((*env)->ExceptionCheck(env) || !go) {
        p->cancelled = 1;
        return 0;
    }
    return 1;
}

static int cancelled(progress *p, emtp_error *err) {
    p->cancelled = 1;
    return emtp_fail(err, EMTP_ESTATE, "cancelled");
}

static int w_prefill(void *self, const int32_t *tokens, int n, float *logits, float *hidden, emtp_error *err) {
    progress *p = self;
    SECTION_BEGIN("prefill");
    int rc = p->inner->ops->prefill(p->inner->self, tokens, n, logits, hidden, err);
    SECTION_END();
    p->outer->graph_ms = p->inner->graph_ms;
    if (rc) return rc;
    p->rounds = 0;
    if (!report(p, 1, 0, 0, NULL, 0)) return cancelled(p, err);
    p->rounds = 1;
    return EMTP_OK;
}

static int w_verify(void *self, const int32_t *tokens, int n, int start, float *logits, float *hidden,
                    emtp_error *err) {
    progress *p = self;
    p->start = start;
    p->n_seq = n < 66 ? n : 66;
    memcpy(p->seq, tokens, sizeof(int32_t) * (size_t)p->n_seq);
    SECTION_BEGIN("verify");
    int rc = p->inner->ops->verify(p->inner->self, tokens, n, start, logits, hidden, err);
    SECTION_END();
    p->outer->graph_ms = p->inner->graph_ms;
    return rc;
}

static void w_rollback(void *self, int length) {
    progress *p = self;
    p->inner->ops->rollback(p->inner->self, length);
    p->outer->graph_ms = p->inner->graph_ms;
    /* tokens at positions next_pos .. length-1 are final: seq[0] at `start`, accepted drafts after it */
    int32_t ids[66];
    int n_ids = 0;
    for (int pos = p->next_pos; pos < length; pos++) {
        int i = pos - p->start;
        if (i >= 0 && i < p->n_seq) ids[n_ids++] = p->seq[i];
    }
    if (length > p->next_pos) p->next_pos = length;
    int accepted = length - p->start - 1;
    /* generated tokens = positions up to length (the bonus token is at `length`) minus the prompt */
    if (!p->cancelled && !report(p, length + 1 - p->n_prompt, p->n_seq - 1, accepted, ids, n_ids)) p->cancelled = 1;
    p->rounds++;
}

static int w_draft(void *self, int32_t token, const float *carry, int position, const emtp_views *views,
                   float *logits, float *carry_out, emtp_error *err) {
    progress *p = self;
    if (p->cancelled) return cancelled(p, err); /* rollback cannot fail: stop at the next call */
    SECTION_BEGIN("draft");
    int rc = p->inner->ops->draft(p->inner->self, token, carry, position, views, logits, carry_out, err);
    SECTION_END();
    p->outer->graph_ms = p->inner->graph_ms;
    return rc;
}

static int w_verify_checked(void *self, const int32_t *tokens, int n, int start, float *logits, float *hidden,
                            emtp_error *err) {
    progress *p = self;
    if (p->cancelled) return cancelled(p, err);
    return w_verify(self, tokens, n, start, logits, hidden, err);
}

static void w_destroy(void *self) { (void)self; /* the handle owns the inner backend */ }

static const emtp_backend_ops PROGRESS_OPS = {w_prefill, w_verify_checked, w_rollback, w_draft, w_destroy};

/* ---- generate ---------------------------------------------------------------------------------- */
static jobject to_raw(JNIEnv *env, const emtp_generation *g) {
    /* meta: per round [index, position, accepted, n_drafts, n_target, n_emitted, n_top];
     * ids: per round drafts, target, emitted, top ids; values: top logit values;
     * ms: per round [draft (NaN if none), verify, graph] */
    int n_ids = 0, n_top = 0;
    for (int i = 0; i < g->n_rounds; i++) {
        const emtp_round *r = &g->rounds[i];
        n_ids += r->n_drafts + r->n_target + r->n_emitted + r->n_top;
        n_top += r->n_top;
    }
    jint *meta = malloc(sizeof(jint) * (size_t)(7 * g->n_rounds + 1));
    jint *ids = malloc(sizeof(jint) * (size_t)(n_ids + 1));
    jfloat *values = malloc(sizeof(jfloat) * (size_t)(n_top + 1));
    jdouble *ms = malloc(sizeof(jdouble) * (size_t)(3 * g->n_rounds + 1));
    jobject result = NULL;
    if (!meta || !ids || !values || !ms) {
        throw_native(env, EMTP_ENOMEM, "out of memory (result)");
        goto done;
    }
    int k = 0, t = 0;
    for (int i = 0; i < g->n_rounds; i++) {
        const emtp_round *r = &g->rounds[i];
        jint m[7] = {r->index, r->position, r->accepted, r->n_drafts, r->n_target, r->n_emitted, r->n_top};
        memcpy(meta + 7 * i, m, sizeof m);
        for (int j = 0; j < r->n_drafts; j++) ids[k++] = r->drafts[j];
        for (int j = 0; j < r->n_target; j++) ids[k++] = r->target[j];
        for (int j = 0; j < r->n_emitted; j++) ids[k++] = r->emitted[j];
        for (int j = 0; j < r->n_top; j++) {
            ids[k++] = r->top_ids[j];
            values[t++] = r->top_values[j];
        }
        ms[3 * i] = r->has_draft_ms ? r->ms_draft : (jdouble)NAN;
        ms[3 * i + 1] = r->ms_verify;
        ms[3 * i + 2] = r->ms_graph;
    }
    jclass cls = (*env)->FindClass(env, CLASS("RawGeneration"));
    if (!cls) goto done;
    jmethodID ctor = (*env)->GetMethodID(env, cls, "<init>", "([I[I[F[D[ILjava/lang/String;)V");
    if (!ctor) goto done;
    jintArray jmeta = (*env)->NewIntArray(env, 7 * g->n_rounds);
    jintArray jids = (*env)->NewIntArray(env, n_ids);
    jfloatArray jvalues = (*env)->NewFloatArray(env, n_top);
    jdoubleArray jms = (*env)->NewDoubleArray(env, 3 * g->n_rounds);
    jintArray jtokens = (*env)->NewIntArray(env, g->n_tokens);
    jstring jstop = (*env)->NewStringUTF(env, g->stop ? g->stop : "");
    if (!jmeta || !jids || !jvalues || !jms || !jtokens || !jstop) goto done;
    (*env)->SetIntArrayRegion(env, jmeta, 0, 7 * g->n_rounds, meta);
    (*env)->SetIntArrayRegion(env, jids, 0, n_ids, ids);
    (*env)->SetFloatArrayRegion(env, jvalues, 0, n_top, values);
    (*env)->SetDoubleArrayRegion(env, jms, 0, 3 * g->n_rounds, ms);
    (*env)->SetIntArrayRegion(env, jtokens, 0, g->n_tokens, (const jint *)g->tokens);
    result = (*env)->NewObject(env, cls, ctor, jmeta, jids, jvalues, jms, jtokens, jstop);
done:
    free(meta);
    free(ids);
    free(values);
    free(ms);
    return result;
}

/* cfg: [draft_len, max_new_tokens, sample (0/1), top_k, kv_view (0 hf, 1 clean)]; real: [temperature, top_p] */
JNIEXPORT jobject JNICALL JNI_FN(nativeGenerate)(JNIEnv *env, jclass cls, jlong jh, jintArray jprompt,
                                                 jintArray jcfg, jdoubleArray jreal, jlong seed, jobject listener) {
    (void)cls;
    handle *h = get_handle(env, jh);
    if (!h) return NULL;
    if (!jprompt || !jcfg || !jreal || (*env)->GetArrayLength(env, jcfg) < 5 ||
        (*env)->GetArrayLength(env, jreal) < 2) {
        throw_native(env, EMTP_EUSAGE, "generate: bad arguments");
        return NULL;
    }
    jint c[5];
    jdouble real[2];
    (*env)->GetIntArrayRegion(env, jcfg, 0, 5, c);
    (*env)->GetDoubleArrayRegion(env, jreal, 0, 2, real);
    emtp_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.draft_len = c[0];
    cfg.max_new_tokens = c[1];
    cfg.sample = c[2] != 0;
    cfg.sampling.top_k = c[3];
    cfg.kv_view = c[4] ? EMTP_KV_CLEAN : EMTP_KV_HF;
    cfg.sampling.temperature = real[0];
    cfg.sampling.top_p = real[1];
    cfg.sampling.seed = (uint64_t)seed;
    if (cfg.sample && !(cfg.sampling.temperature > 0 && cfg.sampling.top_p > 0 && cfg.sampling.top_p <= 1 &&
                        cfg.sampling.top_k >= 0)) {
        throw_native(env, EMTP_EUSAGE, "sampling needs temperature > 0, top_k >= 0 and top_p in (0, 1]");
        return NULL;
    }
    jsize n_prompt = (*env)->GetArrayLength(env, jprompt);
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)(n_prompt + 1));
    if (!prompt) {
        throw_native(env, EMTP_ENOMEM, "out of memory (prompt)");
        return NULL;
    }
    (*env)->GetIntArrayRegion(env, jprompt, 0, n_prompt, (jint *)prompt);

    progress p;
    memset(&p, 0, sizeof p);
    emtp_backend outer = h->backend;
    outer.ops = &PROGRESS_OPS;
    outer.self = &p;
    p.inner = &h->backend;
    p.outer = &outer;
    p.env = env;
    p.n_prompt = n_prompt;
    p.next_pos = n_prompt;
    if (listener) {
        jclass lcls = (*env)->GetObjectClass(env, listener);
        p.on_round = (*env)->GetMethodID(env, lcls, "onRound", "(IIII[I)Z");
        if (!p.on_round) {
            free(prompt);
            return NULL; /* NoSuchMethodError pending */
        }
        p.listener = listener;
    }
    emtp_generation gen;
    emtp_error err = {0, ""};
    int rc = emtp_generate(&outer, prompt, n_prompt, &cfg, &gen, &err);
    free(prompt);
    if (rc) {
        if (!(*env)->ExceptionCheck(env))
            throw_native(env, p.cancelled ? EMTP_CANCELLED : rc, p.cancelled ? "cancelled" : err.message);
        return NULL;
    }
    jobject result = (*env)->ExceptionCheck(env) ? NULL : to_raw(env, &gen);
    emtp_generation_free(&gen);
    return result;
}
