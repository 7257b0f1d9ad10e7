/* The LiteRT backend: runs a .litertlm bundle's graphs through the LiteRT C API (CompiledModel) of
 * libLiteRt.so, loaded with dlopen, mirroring src/edge_mtp/runtime/litert_backend.py call for call.
 *
 * The declarations below are our own minimal view of that API (opaque handles, int status, size_t
 * indices); no upstream header is used. The K/V cache is one set of managed host TensorBuffers created
 * once from the target's first signature, passed as input *and* output of every target signature and
 * as the drafter's read-only inputs (LiteRT-LM's binding), so no call copies the cache. */
#include "edge_mtp.h"

#include <dlfcn.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef EMTP_LITERT_LIB_DEFAULT
#define EMTP_LITERT_LIB_DEFAULT "libLiteRt.so"
#endif

/* ---- our declarations of the LiteRT C API ------------------------------------------------------ */
typedef int lrt_status; /* 0 = ok */
typedef void *lrt_handle;
typedef struct lrt_tensor_type {
    alignas(16) unsigned char opaque[256]; /* LiteRtRankedTensorType is smaller; never read here */
} lrt_tensor_type;
enum { LRT_HW_CPU = 1, LRT_LOCK_READ = 0, LRT_LOCK_WRITE = 1 };

typedef struct lrt_api {
    void *dl;
    lrt_status (*CreateEnvironment)(int, const void *, lrt_handle *);
    void (*DestroyEnvironment)(lrt_handle);
    lrt_status (*CreateModelFromBuffer)(lrt_handle env, const void *, size_t, lrt_handle *);
    void (*DestroyModel)(lrt_handle);
    lrt_status (*CreateOptions)(lrt_handle *);
    void (*DestroyOptions)(lrt_handle);
    lrt_status (*SetOptionsHardwareAccelerators)(lrt_handle, int);
    lrt_status (*CreateCompiledModel)(lrt_handle env, lrt_handle model, lrt_handle opts, lrt_handle *);
    void (*DestroyCompiledModel)(lrt_handle);
    lrt_status (*GetCompiledModelInputBufferRequirements)(lrt_handle, size_t, size_t, lrt_handle *);
    lrt_status (*GetCompiledModelOutputBufferRequirements)(lrt_handle, size_t, size_t, lrt_handle *);
    lrt_status (*RunCompiledModel)(lrt_handle, size_t, size_t, lrt_handle *, size_t, lrt_handle *);
    lrt_status (*CreateManagedTensorBufferFromRequirements)(lrt_handle env, const lrt_tensor_type *, lrt_handle,
                                                            lrt_handle *);
    void (*DestroyTensorBuffer)(lrt_handle);
    lrt_status (*LockTensorBuffer)(lrt_handle, void **, int);
    lrt_status (*UnlockTensorBuffer)(lrt_handle);
    lrt_status (*GetTensorBufferPackedSize)(lrt_handle, size_t *);
    lrt_status (*GetNumModelSignatures)(lrt_handle, size_t *);
    lrt_status (*GetModelSignature)(lrt_handle, size_t, lrt_handle *);
    lrt_status (*GetSignatureKey)(lrt_handle, const char **);
    lrt_status (*GetNumSignatureInputs)(lrt_handle, size_t *);
    lrt_status (*GetSignatureInputName)(lrt_handle, size_t, const char **);
    lrt_status (*GetNumSignatureOutputs)(lrt_handle, size_t *);
    lrt_status (*GetSignatureOutputName)(lrt_handle, size_t, const char **);
    lrt_status (*GetSignatureInputTensorByIndex)(lrt_handle, size_t, lrt_handle *);
    lrt_status (*GetSignatureOutputTensorByIndex)(lrt_handle, size_t, lrt_handle *);
    lrt_status (*GetRankedTensorType)(lrt_handle, lrt_tensor_type *);
    /* optional (NULL where the library lacks them): the CPU accelerator's settings as opaque options */
    lrt_status (*CreateOpaqueOptions)(const char *identifier, void *payload, void (*destroy)(void *), lrt_handle *);
    lrt_status (*AddOpaqueOptions)(lrt_handle options, lrt_handle opaque);
    void (*DestroyOpaqueOptions)(lrt_handle opaque);
} lrt_api;

static int load_api(lrt_api *a, const char *path, emtp_error *err) {
    memset(a, 0, sizeof *a);
    a->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!a->dl) {
        const char *why = dlerror();
        return emtp_fail(err, EMTP_ELITERT, "cannot load the LiteRT library %s (%s); set EDGE_MTP_LITERT_LIB or "
                         "--litert-lib", path, why ? why : "?");
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
#define SYM(n) {"LiteRt" #n, (void **)(void *)&a->n}
        SYM(CreateEnvironment), SYM(DestroyEnvironment), SYM(CreateModelFromBuffer), SYM(DestroyModel),
        SYM(CreateOptions), SYM(DestroyOptions), SYM(SetOptionsHardwareAccelerators), SYM(CreateCompiledModel),
        SYM(DestroyCompiledModel), SYM(GetCompiledModelInputBufferRequirements),
        SYM(GetCompiledModelOutputBufferRequirements), SYM(RunCompiledModel),
        SYM(CreateManagedTensorBufferFromRequirements), SYM(DestroyTensorBuffer), SYM(LockTensorBuffer),
        SYM(UnlockTensorBuffer), SYM(GetTensorBufferPackedSize), SYM(GetNumModelSignatures), SYM(GetModelSignature),
        SYM(GetSignatureKey), SYM(GetNumSignatureInputs), SYM(GetSignatureInputName), SYM(GetNumSignatureOutputs),
        SYM(GetSignatureOutputName), SYM(GetSignatureInputTensorByIndex), SYM(GetSignatureOutputTensorByIndex),
        SYM(GetRankedTensorType),
#undef SYM
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *p = dlsym(a->dl, syms[i].name);
        if (!p) {
            dlclose(a->dl);
            a->dl = NULL;
            return emtp_fail(err, EMTP_ELITERT, "%s: no symbol %s (unsupported LiteRT version?)", path, syms[i].name);
        }
        memcpy(syms[i].slot, &p, sizeof p); /* object <- function pointer, as POSIX dlsym requires */
    }
    void *create = dlsym(a->dl, "LiteRtCreateOpaqueOptions"), *add = dlsym(a->dl, "LiteRtAddOpaqueOptions"),
         *destroy = dlsym(a->dl, "LiteRtDestroyOpaqueOptions");
    if (create && add && destroy) {
        memcpy(&a->CreateOpaqueOptions, &create, sizeof create);
        memcpy(&a->AddOpaqueOptions, &add, sizeof add);
        memcpy(&a->DestroyOpaqueOptions, &destroy, sizeof destroy);
    }
    return EMTP_OK;
}

/* The CPU accelerator's thread count. LiteRT reads its CPU settings from opaque options named "xnnpack" whose
 * payload is TOML text (what its C++ CpuOptions and Python's CpuOptions(num_threads=...) write); without them
 * XNNPACK runs on its default, which decoded E2B in 74 ms where Python's 2 threads took 50. Needs the
 * four-argument LiteRtCreateOpaqueOptions (LiteRT 2.x; early 2025 builds took a payload version first). */
static int set_threads(lrt_api *a, lrt_handle options, int threads, emtp_error *err) {
    if (threads <= 0) return EMTP_OK;
    if (!a->CreateOpaqueOptions)
        return emtp_fail(err, EMTP_ELITERT,
                         "this LiteRT library cannot set CPU threads (no LiteRtCreateOpaqueOptions); use --threads 0");
    char *toml = malloc(32);
    lrt_handle opaque = NULL;
    if (!toml) return emtp_fail(err, EMTP_ENOMEM, "out of memory");
    snprintf(toml, 32, "num_threads = %d\n", threads);
    if (a->CreateOpaqueOptions("xnnpack", toml, free, &opaque)) {
        free(toml);
        return emtp_fail(err, EMTP_ELITERT, "cannot create LiteRT's CPU options");
    }
    if (a->AddOpaqueOptions(options, opaque)) {
        a->DestroyOpaqueOptions(opaque); /* frees the payload too */
        return emtp_fail(err, EMTP_ELITERT, "cannot add LiteRT's CPU options");
    }
    return EMTP_OK;
}

/* ---- graphs ------------------------------------------------------------------------------------ */
typedef struct lrt_sig {
    char *key;
    int n_in, n_out;
    char **in_names, **out_names;
    lrt_handle *in, *out;          /* buffers in signature order */
    unsigned char *in_own, *out_own; /* 1 = created here (not a shared K/V buffer) */
    size_t *in_bytes, *out_bytes;
} lrt_sig;

typedef struct lrt_graph {
    unsigned char *data; /* the flatbuffer; LiteRT keeps pointing into it */
    lrt_handle model, compiled;
    int n_sigs;
    lrt_sig *sigs;
} lrt_graph;

#define MAX_SHARED EMTP_MAX_KV

typedef struct lrt_backend {
    lrt_api api;
    lrt_handle env, options;
    lrt_graph target, embedder, per_layer, drafter;
    int has_per_layer, has_drafter;
    int n_kv;
    char *kv_names[MAX_SHARED];
    lrt_handle kv[MAX_SHARED];
    int V, H, context, window, verify_len, length;
    int prefill_lengths[16], n_prefill;
    emtp_backend *pub;
    float *row; /* H floats of scratch */
} lrt_backend;

static double now_ms(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static lrt_handle shared_kv(lrt_backend *lb, const char *name) {
    for (int i = 0; i < lb->n_kv; i++)
        if (!strcmp(lb->kv_names[i], name)) return lb->kv[i];
    return NULL;
}

static void graph_free(lrt_backend *lb, lrt_graph *g) {
    lrt_api *a = &lb->api;
    for (int s = 0; s < g->n_sigs; s++) {
        lrt_sig *sig = &g->sigs[s];
        for (int i = 0; i < sig->n_in; i++) {
            if (sig->in_own && sig->in_own[i] && sig->in[i]) a->DestroyTensorBuffer(sig->in[i]);
            if (sig->in_names) free(sig->in_names[i]);
        }
        for (int i = 0; i < sig->n_out; i++) {
            if (sig->out_own && sig->out_own[i] && sig->out[i]) a->DestroyTensorBuffer(sig->out[i]);
            if (sig->out_names) free(sig->out_names[i]);
        }
        free(sig->key);
        free(sig->in_names);
        free(sig->out_names);
        free(sig->in);
        free(sig->out);
        free(sig->in_own);
        free(sig->out_own);
        free(sig->in_bytes);
        free(sig->out_bytes);
    }
    free(g->sigs);
    if (g->compiled) a->DestroyCompiledModel(g->compiled);
    if (g->model) a->DestroyModel(g->model);
    free(g->data);
    memset(g, 0, sizeof *g);
}

static int make_buffer(lrt_backend *lb, lrt_graph *g, size_t sig_index, lrt_handle sig, size_t index, int output,
                       lrt_handle *out, size_t *bytes, emtp_error *err) {
    lrt_api *a = &lb->api;
    lrt_handle tensor, req;
    lrt_tensor_type type;
    memset(&type, 0, sizeof type);
    lrt_status st = output ? a->GetSignatureOutputTensorByIndex(sig, index, &tensor)
                           : a->GetSignatureInputTensorByIndex(sig, index, &tensor);
    if (!st) st = a->GetRankedTensorType(tensor, &type);
    if (!st)
        st = output ? a->GetCompiledModelOutputBufferRequirements(g->compiled, sig_index, index, &req)
                    : a->GetCompiledModelInputBufferRequirements(g->compiled, sig_index, index, &req);
    if (!st) st = a->CreateManagedTensorBufferFromRequirements(lb->env, &type, req, out);
    if (!st) st = a->GetTensorBufferPackedSize(*out, bytes);
    if (st) return emtp_fail(err, EMTP_ELITERT, "cannot create a tensor buffer (LiteRT status %d)", st);
    return EMTP_OK;
}

static int buffer_bytes(lrt_backend *lb, lrt_handle buf, size_t *bytes, emtp_error *err) {
    lrt_status st = lb->api.GetTensorBufferPackedSize(buf, bytes);
    return st ? emtp_fail(err, EMTP_ELITERT, "cannot size a tensor buffer (LiteRT status %d)", st) : EMTP_OK;
}

/* Loads a section as a CompiledModel and creates its buffers. With `make_kv`, the K/V inputs of
 * signature 0 become the shared cache buffers. */
static int graph_open(lrt_backend *lb, const emtp_bundle *bundle, const char *kind, int make_kv, lrt_graph *g,
                      emtp_error *err) {
    lrt_api *a = &lb->api;
    memset(g, 0, sizeof *g);
    const emtp_section *sec = emtp_bundle_find(bundle, kind);
    if (!sec) return emtp_fail(err, EMTP_EBUNDLE, "%s: no %s section", bundle->path, kind);
    size_t size;
    int rc = emtp_bundle_read(bundle, sec, &g->data, &size, err);
    if (rc) return rc;
    lrt_status st = a->CreateModelFromBuffer(lb->env, g->data, size, &g->model);
    if (st) return emtp_fail(err, EMTP_EBUNDLE, "%s: section %s is not a loadable LiteRT model (status %d)",
                             bundle->path, kind, st);
    if ((st = a->CreateCompiledModel(lb->env, g->model, lb->options, &g->compiled)))
        return emtp_fail(err, EMTP_ELITERT, "%s: cannot compile section %s (LiteRT status %d)", bundle->path, kind, st);
    size_t n_sigs;
    if ((st = a->GetNumModelSignatures(g->model, &n_sigs)) || n_sigs < 1 || n_sigs > 64)
        return emtp_fail(err, EMTP_EBUNDLE, "%s: section %s has no usable signatures", bundle->path, kind);
    g->sigs = calloc(n_sigs, sizeof *g->sigs);
    if (!g->sigs) return emtp_fail(err, EMTP_ENOMEM, "out of memory");
    g->n_sigs = (int)n_sigs;
    for (size_t s = 0; s < n_sigs; s++) {
        lrt_sig *sig = &g->sigs[s];
        lrt_handle h;
        const char *key;
        size_t n_in, n_out;
        if (a->GetModelSignature(g->model, s, &h) || a->GetSignatureKey(h, &key) || a->GetNumSignatureInputs(h, &n_in) ||
            a->GetNumSignatureOutputs(h, &n_out) || n_in > 256 || n_out > 256)
            return emtp_fail(err, EMTP_EBUNDLE, "%s: section %s: unreadable signature %zu", bundle->path, kind, s);
        sig->key = dup_str(key);
        sig->in_names = calloc(n_in + 1, sizeof(char *));
        sig->out_names = calloc(n_out + 1, sizeof(char *));
        sig->in = calloc(n_in + 1, sizeof(lrt_handle));
        sig->out = calloc(n_out + 1, sizeof(lrt_handle));
        sig->in_own = calloc(n_in + 1, 1);
        sig->out_own = calloc(n_out + 1, 1);
        sig->in_bytes = calloc(n_in + 1, sizeof(size_t));
        sig->out_bytes = calloc(n_out + 1, sizeof(size_t));
        if (!sig->key || !sig->in_names || !sig->out_names || !sig->in || !sig->out || !sig->in_own || !sig->out_own ||
            !sig->in_bytes || !sig->out_bytes)
            return emtp_fail(err, EMTP_ENOMEM, "out of memory");
        for (size_t i = 0; i < n_in; i++) {
            const char *name;
            if (a->GetSignatureInputName(h, i, &name) || !(sig->in_names[i] = dup_str(name)))
                return emtp_fail(err, EMTP_ELITERT, "%s: signature %s: unreadable input %zu", kind, key, i);
            sig->n_in = (int)i + 1;
            int is_kv = !strncmp(name, "kv_cache_", 9);
            if (is_kv && make_kv && s == 0) {
                if (lb->n_kv == MAX_SHARED) return emtp_fail(err, EMTP_EBUNDLE, "%s: too many K/V inputs", kind);
                if ((rc = make_buffer(lb, g, s, h, i, 0, &lb->kv[lb->n_kv], &sig->in_bytes[i], err))) return rc;
                if (!(lb->kv_names[lb->n_kv] = dup_str(name))) return emtp_fail(err, EMTP_ENOMEM, "out of memory");
                lb->n_kv++;
            }
            lrt_handle kv = is_kv ? shared_kv(lb, name) : NULL;
            if (kv) {
                sig->in[i] = kv;
                if ((rc = buffer_bytes(lb, kv, &sig->in_bytes[i], err))) return rc;
            } else {
                if ((rc = make_buffer(lb, g, s, h, i, 0, &sig->in[i], &sig->in_bytes[i], err))) return rc;
                sig->in_own[i] = 1;
            }
        }
        for (size_t i = 0; i < n_out; i++) {
            const char *name;
            if (a->GetSignatureOutputName(h, i, &name) || !(sig->out_names[i] = dup_str(name)))
                return emtp_fail(err, EMTP_ELITERT, "%s: signature %s: unreadable output %zu", kind, key, i);
            sig->n_out = (int)i + 1;
            lrt_handle kv = !strncmp(name, "kv_cache_", 9) ? shared_kv(lb, name) : NULL;
            if (kv) {
                sig->out[i] = kv;
                if ((rc = buffer_bytes(lb, kv, &sig->out_bytes[i], err))) return rc;
            } else {
                if ((rc = make_buffer(lb, g, s, h, i, 1, &sig->out[i], &sig->out_bytes[i], err))) return rc;
                sig->out_own[i] = 1;
            }
        }
    }
    return EMTP_OK;
}

static int find_sig(const lrt_graph *g, const char *key) {
    for (int i = 0; i < g->n_sigs; i++)
        if (!strcmp(g->sigs[i].key, key)) return i;
    return -1;
}

static int find_name(char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

/* Copy `bytes` into / out of a buffer at byte `offset`. */
static int put(lrt_backend *lb, lrt_handle buf, size_t cap, size_t offset, const void *src, size_t bytes,
               emtp_error *err) {
    void *mem;
    if (offset + bytes > cap) return emtp_fail(err, EMTP_ESTATE, "write past a tensor buffer (%zu > %zu)", offset + bytes, cap);
    if (lb->api.LockTensorBuffer(buf, &mem, LRT_LOCK_WRITE))
        return emtp_fail(err, EMTP_ELITERT, "cannot lock a tensor buffer for writing");
    memcpy((unsigned char *)mem + offset, src, bytes);
    lb->api.UnlockTensorBuffer(buf);
    return EMTP_OK;
}

static int get(lrt_backend *lb, lrt_handle buf, size_t cap, size_t offset, void *dst, size_t bytes, emtp_error *err) {
    void *mem;
    if (offset + bytes > cap) return emtp_fail(err, EMTP_ESTATE, "read past a tensor buffer (%zu > %zu)", offset + bytes, cap);
    if (lb->api.LockTensorBuffer(buf, &mem, LRT_LOCK_READ))
        return emtp_fail(err, EMTP_ELITERT, "cannot lock a tensor buffer for reading");
    memcpy(dst, (const unsigned char *)mem + offset, bytes);
    lb->api.UnlockTensorBuffer(buf);
    return EMTP_OK;
}

static int run(lrt_backend *lb, lrt_graph *g, int s, emtp_error *err) {
    lrt_sig *sig = &g->sigs[s];
    double t0 = now_ms();
    lrt_status st = lb->api.RunCompiledModel(g->compiled, (size_t)s, (size_t)sig->n_in, sig->in, (size_t)sig->n_out,
                                             sig->out);
    lb->pub->graph_ms += now_ms() - t0;
    return st ? emtp_fail(err, EMTP_ELITERT, "running signature %s failed (LiteRT status %d)", sig->key, st) : EMTP_OK;
}

/* input / output of a named signature, checked */
static int io(lrt_graph *g, int s, const char *name, int output, emtp_error *err) {
    lrt_sig *sig = &g->sigs[s];
    int i = output ? find_name(sig->out_names, sig->n_out, name) : find_name(sig->in_names, sig->n_in, name);
    if (i < 0) return -emtp_fail(err, EMTP_EBUNDLE, "signature %s has no %s %s", sig->key, output ? "output" : "input", name);
    return i;
}

/* One embedder call: token -> `len` floats in lb->row-sized dst. */
static int lookup(lrt_backend *lb, lrt_graph *g, const char *sig_key, const char *out_name, int32_t token, void *dst,
                  size_t bytes, emtp_error *err) {
    int s = find_sig(g, sig_key), rc;
    if (s < 0) return emtp_fail(err, EMTP_EBUNDLE, "no %s signature", sig_key);
    int in = io(g, s, "token_ids", 0, err), out;
    if (in < 0) return -in;
    if ((out = io(g, s, out_name, 1, err)) < 0) return -out;
    lrt_sig *sig = &g->sigs[s];
    if ((rc = put(lb, sig->in[in], sig->in_bytes[in], 0, &token, 4, err))) return rc;
    if ((rc = run(lb, g, s, err))) return rc;
    return get(lb, sig->out[out], sig->out_bytes[out], 0, dst, bytes, err);
}

/* Run `n` tokens at start.. through target signature `s` of `rows` rows (the rest padded at position 0
 * with token 0); logits/hidden (n rows each) are read if not NULL. */
static int target_run(lrt_backend *lb, int s, const int32_t *tokens, int n, int start, int rows, float *logits,
                      float *hidden, emtp_error *err) {
    lrt_graph *g = &lb->target;
    lrt_sig *sig = &g->sigs[s];
    int rc, e = io(g, s, "embeddings", 0, err), pos;
    if (e < 0) return -e;
    if ((pos = io(g, s, "input_pos", 0, err)) < 0) return -pos;
    size_t hb = (size_t)lb->H * 4;
    if (sig->in_bytes[e] != hb * (size_t)rows || sig->in_bytes[pos] != 4 * (size_t)rows)
        return emtp_fail(err, EMTP_EBUNDLE, "signature %s: unexpected input sizes", sig->key);
    void *mem;
    if (lb->api.LockTensorBuffer(sig->in[e], &mem, LRT_LOCK_WRITE))
        return emtp_fail(err, EMTP_ELITERT, "cannot lock a tensor buffer for writing");
    for (int i = 0; i < rows; i++) { /* embeddings of tokens, then of token 0 for padding */
        rc = lookup(lb, &lb->embedder, "embedder", "embeddings", i < n ? tokens[i] : 0, (unsigned char *)mem + hb * (size_t)i,
                    hb, err);
        if (rc) {
            lb->api.UnlockTensorBuffer(sig->in[e]);
            return rc;
        }
    }
    lb->api.UnlockTensorBuffer(sig->in[e]);
    if (lb->has_per_layer) {
        int p = io(g, s, "per_layer_embeddings", 0, err);
        if (p < 0) return -p;
        size_t pb = sig->in_bytes[p] / (size_t)rows;
        if (lb->api.LockTensorBuffer(sig->in[p], &mem, LRT_LOCK_WRITE))
            return emtp_fail(err, EMTP_ELITERT, "cannot lock a tensor buffer for writing");
        for (int i = 0; i < rows; i++) {
            rc = lookup(lb, &lb->per_layer, "per_layer_embedder", "per_layer_embeddings", i < n ? tokens[i] : 0,
                        (unsigned char *)mem + pb * (size_t)i, pb, err);
            if (rc) {
                lb->api.UnlockTensorBuffer(sig->in[p]);
                return rc;
            }
        }
        lb->api.UnlockTensorBuffer(sig->in[p]);
    }
    int32_t positions[256];
    if (rows > 256) return emtp_fail(err, EMTP_EBUNDLE, "signature %s has more than 256 rows", sig->key);
    for (int i = 0; i < rows; i++) positions[i] = i < n ? start + i : 0;
    if ((rc = put(lb, sig->in[pos], sig->in_bytes[pos], 0, positions, 4 * (size_t)rows, err))) return rc;
    if ((rc = run(lb, g, s, err))) return rc;
    if (logits) {
        int o = io(g, s, "logits", 1, err);
        if (o < 0) return -o;
        if ((rc = get(lb, sig->out[o], sig->out_bytes[o], 0, logits, (size_t)n * (size_t)lb->V * 4, err))) return rc;
    }
    if (hidden) {
        int o = io(g, s, "activations", 1, err);
        if (o < 0) return -o;
        if ((rc = get(lb, sig->out[o], sig->out_bytes[o], 0, hidden, (size_t)n * hb, err))) return rc;
    }
    return EMTP_OK;
}

/* `n` tokens at start..: through the verify signature when they fit it (fewer than its rows are padded;
 * the padding rows' K/V land beyond every real row's position, hidden by the causal mask and overwritten by
 * the next run), else one decode per token. The Python backend makes the same choice. */
static int target_rows(lrt_backend *lb, const int32_t *tokens, int n, int start, float *logits, float *hidden,
                       emtp_error *err) {
    int rc;
    if (n > 1 && n <= lb->verify_len && start + lb->verify_len <= lb->context)
        return target_run(lb, find_sig(&lb->target, "verify"), tokens, n, start, lb->verify_len, logits, hidden, err);
    int s = find_sig(&lb->target, "decode");
    if (s < 0) return emtp_fail(err, EMTP_EBUNDLE, "the target has no decode signature");
    for (int i = 0; i < n; i++)
        if ((rc = target_run(lb, s, tokens + i, 1, start + i, 1, logits + (size_t)i * (size_t)lb->V,
                             hidden + (size_t)i * (size_t)lb->H, err)))
            return rc;
    return EMTP_OK;
}

static int lrt_verify(void *self, const int32_t *tokens, int n, int start, float *logits, float *hidden,
                      emtp_error *err) {
    lrt_backend *lb = self;
    int rc;
    if (start != lb->length)
        return emtp_fail(err, EMTP_ESTATE, "target run at position %d, but %d positions are valid", start, lb->length);
    if (start + n > lb->context)
        return emtp_fail(err, EMTP_ESTATE, "target run past the context (%d + %d > %d)", start, n, lb->context);
    if (n > lb->verify_len)
        return emtp_fail(err, EMTP_EUSAGE, "%d drafts per round, but this bundle verifies at most %d (exported with "
                         "--draft-len %d)", n - 1, lb->verify_len - 1, lb->verify_len - 1);
    if ((rc = target_rows(lb, tokens, n, start, logits, hidden, err))) return rc;
    lb->length = start + n;
    return EMTP_OK;
}

static int lrt_prefill(void *self, const int32_t *tokens, int n, float *logits, float *hidden, emtp_error *err) {
    lrt_backend *lb = self;
    if (n > lb->context)
        return emtp_fail(err, EMTP_EUSAGE, "the prompt has %d tokens but the bundle's context is %d", n, lb->context);
    int done = 0, head = n - 1, rc;
    while (head - done > 0) {
        int chosen = -1, largest = -1;
        for (int i = 0; i < lb->n_prefill; i++) {
            int len = lb->prefill_lengths[i];
            if (done + len > lb->context) continue;
            largest = len; /* sorted ascending: the last fitting one is the largest */
            if (chosen < 0 && len >= head - done) chosen = len;
        }
        if (largest < 0) break;
        if (chosen < 0) chosen = largest;
        char key[32];
        snprintf(key, sizeof key, "prefill_%d", chosen);
        int take = head < done + chosen ? head - done : chosen;
        if ((rc = target_run(lb, find_sig(&lb->target, key), tokens + done, take, done, chosen, NULL, NULL, err)))
            return rc;
        done += take;
    }
    lb->length = done;
    /* verify(tokens[done:], done), keeping the last row only */
    int m = n - done;
    float *all_logits = malloc(sizeof(float) * (size_t)m * (size_t)lb->V);
    float *all_hidden = malloc(sizeof(float) * (size_t)m * (size_t)lb->H);
    if (!all_logits || !all_hidden) {
        free(all_logits);
        free(all_hidden);
        return emtp_fail(err, EMTP_ENOMEM, "out of memory");
    }
    rc = target_rows(lb, tokens + done, m, done, all_logits, all_hidden, err);
    if (!rc) {
        lb->length = n;
        memcpy(logits, all_logits + (size_t)(m - 1) * (size_t)lb->V, sizeof(float) * (size_t)lb->V);
        memcpy(hidden, all_hidden + (size_t)(m - 1) * (size_t)lb->H, sizeof(float) * (size_t)lb->H);
    }
    free(all_logits);
    free(all_hidden);
    return rc;
}

static void lrt_rollback(void *self, int length) {
    ((lrt_backend *)self)->length = length;
}

/* Full-vocabulary logits [V] from the centroid head's candidates (`mtp_drafter_candidates`): every other token
 * gets min(candidates) - 1, the numbers the graph's own placement gives (docs/bundle.md#drafter-candidates). */
static int place_candidates(lrt_backend *lb, const lrt_sig *sig, int out_l, int out_i, float *logits, emtp_error *err) {
    size_t n = sig->out_bytes[out_l] / 4;
    if (n == 0 || sig->out_bytes[out_i] != n * 4)
        return emtp_fail(err, EMTP_EBUNDLE, "the drafter's candidate_ids and candidate_logits differ in length");
    void *scores_mem, *ids_mem;
    if (lb->api.LockTensorBuffer(sig->out[out_l], &scores_mem, LRT_LOCK_READ))
        return emtp_fail(err, EMTP_ELITERT, "cannot lock a tensor buffer for reading");
    if (lb->api.LockTensorBuffer(sig->out[out_i], &ids_mem, LRT_LOCK_READ)) {
        lb->api.UnlockTensorBuffer(sig->out[out_l]);
        return emtp_fail(err, EMTP_ELITERT, "cannot lock a tensor buffer for reading");
    }
    const float *scores = scores_mem;
    const int32_t *ids = ids_mem;
    float least = scores[0];
    for (size_t i = 1; i < n; i++)
        if (scores[i] < least) least = scores[i];
    float fill = least - 1.0f;
    for (int v = 0; v < lb->V; v++) logits[v] = fill;
    int rc = EMTP_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (ids[i] < 0 || ids[i] >= lb->V) rc = emtp_fail(err, EMTP_EBUNDLE, "drafter candidate id %d is outside the vocabulary", ids[i]);
        else logits[ids[i]] = scores[i];
    }
    lb->api.UnlockTensorBuffer(sig->out[out_i]);
    lb->api.UnlockTensorBuffer(sig->out[out_l]);
    return rc;
}

static int lrt_draft(void *self, int32_t token, const float *carry, int position, const emtp_views *v, float *logits,
                     float *carry_out, emtp_error *err) {
    lrt_backend *lb = self;
    if (!lb->has_drafter)
        return emtp_fail(err, EMTP_EUSAGE, "this bundle has no tf_lite_mtp_drafter section; use --draft-len 0");
    int end = v->sliding_hi;
    int lo = end - lb->window > 0 ? end - lb->window : 0, full_hi = end < position ? end : position;
    if (v->sliding_lo != lo || v->full_lo != 0 || v->full_hi != full_hi)
        return emtp_fail(err, EMTP_ESTATE, "drafter view (%d..%d, %d..%d) is not expressible by the bundle's mask input",
                         v->sliding_lo, v->sliding_hi, v->full_lo, v->full_hi);
    if (end >= lb->context) return emtp_fail(err, EMTP_ESTATE, "drafter view past the context");
    lrt_graph *g = &lb->drafter;
    /* ours, when the bundle has it: the same step without the vocabulary-sized placement in the graph */
    int s = find_sig(g, "mtp_drafter_candidates"), rc, candidates = s >= 0, out_i = 0;
    if (!candidates) s = find_sig(g, "mtp_drafter");
    if (s < 0) return emtp_fail(err, EMTP_EBUNDLE, "the drafter has no mtp_drafter signature");
    lrt_sig *sig = &g->sigs[s];
    int act = io(g, s, "activations", 0, err), pos, mask, out_l, out_c;
    if (act < 0) return -act;
    if ((pos = io(g, s, "input_pos", 0, err)) < 0) return -pos;
    if ((mask = io(g, s, "mask", 0, err)) < 0) return -mask;
    if ((out_l = io(g, s, candidates ? "candidate_logits" : "logits", 1, err)) < 0) return -out_l;
    if (candidates && (out_i = io(g, s, "candidate_ids", 1, err)) < 0) return -out_i;
    if ((out_c = io(g, s, "projected_activations", 1, err)) < 0) return -out_c;
    size_t hb = (size_t)lb->H * 4;
    if ((rc = lookup(lb, &lb->embedder, "embedder", "embeddings", token, lb->row, hb, err))) return rc;
    if ((rc = put(lb, sig->in[act], sig->in_bytes[act], 0, lb->row, hb, err))) return rc;
    if ((rc = put(lb, sig->in[act], sig->in_bytes[act], hb, carry, hb, err))) return rc;
    int32_t p = position - 1;
    if ((rc = put(lb, sig->in[pos], sig->in_bytes[pos], 0, &p, 4, err))) return rc;
    void *mem;
    if (sig->in_bytes[mask] != (size_t)lb->context)
        return emtp_fail(err, EMTP_EBUNDLE, "the drafter's mask is not %d bools", lb->context);
    if (lb->api.LockTensorBuffer(sig->in[mask], &mem, LRT_LOCK_WRITE))
        return emtp_fail(err, EMTP_ELITERT, "cannot lock a tensor buffer for writing");
    for (int i = 0; i < lb->context; i++) ((unsigned char *)mem)[i] = i <= end;
    lb->api.UnlockTensorBuffer(sig->in[mask]);
    if ((rc = run(lb, g, s, err))) return rc;
    rc = candidates ? place_candidates(lb, sig, out_l, out_i, logits, err)
                    : get(lb, sig->out[out_l], sig->out_bytes[out_l], 0, logits, (size_t)lb->V * 4, err);
    if (rc) return rc;
    return get(lb, sig->out[out_c], sig->out_bytes[out_c], 0, carry_out, hb, err);
}

static void lrt_destroy(void *self) {
    lrt_backend *lb = self;
    if (!lb) return;
    if (lb->api.dl) {
        graph_free(lb, &lb->drafter);
        graph_free(lb, &lb->per_layer);
        graph_free(lb, &lb->embedder);
        graph_free(lb, &lb->target);
        for (int i = 0; i < lb->n_kv; i++) {
            lb->api.DestroyTensorBuffer(lb->kv[i]);
            free(lb->kv_names[i]);
        }
        if (lb->options) lb->api.DestroyOptions(lb->options);
        if (lb->env) lb->api.DestroyEnvironment(lb->env);
        dlclose(lb->api.dl);
    }
    free(lb->row);
    free(lb);
}

static const emtp_backend_ops LRT_OPS = {lrt_prefill, lrt_verify, lrt_rollback, lrt_draft, lrt_destroy};

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int setup(lrt_backend *lb, const char *bundle_path, const char *lib, int threads, emtp_backend *out,
                 emtp_error *err) {
    emtp_bundle bundle;
    emtp_manifest m;
    int rc = emtp_bundle_open(bundle_path, &bundle, err);
    if (rc) return rc;
    if ((rc = emtp_bundle_manifest(&bundle, &m, err))) goto out;
    if ((rc = load_api(&lb->api, lib, err))) goto out;
    lrt_api *a = &lb->api;
    if (a->CreateEnvironment(0, NULL, &lb->env) || a->CreateOptions(&lb->options) ||
        a->SetOptionsHardwareAccelerators(lb->options, LRT_HW_CPU)) {
        rc = emtp_fail(err, EMTP_ELITERT, "cannot create the LiteRT environment");
        goto out;
    }
    if ((rc = set_threads(a, lb->options, threads, err))) goto out;
    if ((rc = graph_open(lb, &bundle, "tf_lite_prefill_decode", 1, &lb->target, err))) goto out;
    /* start from a zeroed cache */
    for (int i = 0; i < lb->n_kv; i++) {
        size_t bytes;
        void *mem;
        if ((rc = buffer_bytes(lb, lb->kv[i], &bytes, err))) goto out;
        if (a->LockTensorBuffer(lb->kv[i], &mem, LRT_LOCK_WRITE)) {
            rc = emtp_fail(err, EMTP_ELITERT, "cannot lock a K/V buffer");
            goto out;
        }
        memset(mem, 0, bytes);
        a->UnlockTensorBuffer(lb->kv[i]);
    }
    if ((rc = graph_open(lb, &bundle, "tf_lite_embedder", 0, &lb->embedder, err))) goto out;
    if (emtp_bundle_find(&bundle, "tf_lite_per_layer_embedder")) {
        if ((rc = graph_open(lb, &bundle, "tf_lite_per_layer_embedder", 0, &lb->per_layer, err))) goto out;
        lb->has_per_layer = 1;
    }
    if (emtp_bundle_find(&bundle, "tf_lite_mtp_drafter")) {
        if ((rc = graph_open(lb, &bundle, "tf_lite_mtp_drafter", 0, &lb->drafter, err))) goto out;
        lb->has_drafter = 1;
    }
    /* sizes: H from the embedder's output, V and the context from the manifest */
    int es = find_sig(&lb->embedder, "embedder");
    int eo = es < 0 ? -1 : find_name(lb->embedder.sigs[es].out_names, lb->embedder.sigs[es].n_out, "embeddings");
    if (eo < 0) {
        rc = emtp_fail(err, EMTP_EBUNDLE, "%s: the embedder has no embedder/embeddings", bundle_path);
        goto out;
    }
    lb->H = (int)(lb->embedder.sigs[es].out_bytes[eo] / 4);
    lb->V = m.vocab_size;
    lb->context = m.context;
    lb->window = m.sliding_window;
    lb->verify_len = -1;
    lb->n_prefill = 0;
    for (int s = 0; s < lb->target.n_sigs; s++) {
        const lrt_sig *sig = &lb->target.sigs[s];
        if (!strcmp(sig->key, "verify")) {
            int p = find_name(sig->in_names, sig->n_in, "input_pos");
            if (p >= 0) lb->verify_len = (int)(sig->in_bytes[p] / 4);
        } else if (!strncmp(sig->key, "prefill_", 8) && lb->n_prefill < 16) {
            lb->prefill_lengths[lb->n_prefill++] = atoi(sig->key + 8);
        }
    }
    qsort(lb->prefill_lengths, (size_t)lb->n_prefill, sizeof(int), cmp_int);
    int d = find_sig(&lb->target, "decode");
    int lo = d < 0 ? -1 : find_name(lb->target.sigs[d].out_names, lb->target.sigs[d].n_out, "logits");
    if (lo < 0 || lb->target.sigs[d].out_bytes[lo] != (size_t)lb->V * 4 || lb->H < 1) {
        rc = emtp_fail(err, EMTP_EBUNDLE, "%s: the target's decode signature does not match the manifest "
                       "(vocab_size %d)", bundle_path, lb->V);
        goto out;
    }
    if (!(lb->row = malloc((size_t)lb->H * 4))) {
        rc = emtp_fail(err, EMTP_ENOMEM, "out of memory");
        goto out;
    }
    out->vocab_size = lb->V;
    out->hidden_size = lb->H;
    out->context = lb->context;
    out->sliding_window = lb->window;
    out->max_verify = lb->verify_len > 0 ? lb->verify_len : 1;
    out->default_draft_len = m.draft_len;
    out->has_drafter = lb->has_drafter;
    memcpy(out->stop_ids, m.stop_ids, sizeof m.stop_ids);
    out->n_stop = m.n_stop;
    snprintf(out->model_id, sizeof out->model_id, "%s", m.model_id);
out:
    emtp_bundle_close(&bundle);
    return rc;
}

int emtp_litert_open(const char *bundle_path, const emtp_litert_options *opts, emtp_backend *out, emtp_error *err) {
    memset(out, 0, sizeof *out);
    const char *lib = opts && opts->library ? opts->library : getenv("EDGE_MTP_LITERT_LIB");
    if (!lib || !*lib) lib = EMTP_LITERT_LIB_DEFAULT;
    lrt_backend *lb = calloc(1, sizeof *lb);
    if (!lb) return emtp_fail(err, EMTP_ENOMEM, "out of memory");
    lb->pub = out;
    int rc = setup(lb, bundle_path, lib, opts ? opts->threads : 0, out, err);
    if (rc) {
        lrt_destroy(lb);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->ops = &LRT_OPS;
    out->self = lb;
    out->name = "native-c";
    return EMTP_OK;
}
