/* The .litertlm container (src/edge_mtp/litertlm.py), parsed without the flatbuffers library:
 * 8-byte magic "LITERTLM", version, at byte 24 a uint64 end of the header, at byte 32 a flatbuffer
 * LiteRTLMMetaData { system_metadata, section_metadata { objects [ SectionObject { items [KeyValuePair],
 * begin_offset u64, end_offset u64, data_type u8 } ] } }. Every offset is bounds-checked: a corrupted
 * bundle gives EMTP_EBUNDLE and a message, never a crash. */
#include "edge_mtp.h"

#include <stdlib.h>
#include <string.h>

/* ---- SHA-256 (FIPS 180-4) ---------------------------------------------------------------------- */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

void emtp_sha256(const unsigned char *data, size_t n, unsigned char out[32]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha256_block(h, data + i);
    unsigned char tail[128] = {0};
    size_t rest = n - i;
    memcpy(tail, data + i, rest);
    tail[rest] = 0x80;
    size_t blocks = rest + 9 <= 64 ? 1 : 2;
    uint64_t bits = (uint64_t)n * 8;
    for (int j = 0; j < 8; j++) tail[blocks * 64 - 1 - j] = (unsigned char)(bits >> (8 * j));
    for (size_t j = 0; j < blocks; j++) sha256_block(h, tail + 64 * j);
    for (int j = 0; j < 8; j++)
        for (int k = 0; k < 4; k++) out[4 * j + k] = (unsigned char)(h[j] >> (24 - 8 * k));
}

/* ---- bounds-checked flatbuffer reading ----------------------------------------------------------- */
typedef struct fb {
    const unsigned char *b;
    size_t n;
} fb;

static int rd32(const fb *f, size_t at, uint32_t *v) {
    if (at > f->n || f->n - at < 4) return -1;
    *v = (uint32_t)f->b[at] | (uint32_t)f->b[at + 1] << 8 | (uint32_t)f->b[at + 2] << 16 | (uint32_t)f->b[at + 3] << 24;
    return 0;
}

static int rd16(const fb *f, size_t at, uint16_t *v) {
    if (at > f->n || f->n - at < 2) return -1;
    *v = (uint16_t)(f->b[at] | f->b[at + 1] << 8);
    return 0;
}

static int rd64(const fb *f, size_t at, uint64_t *v) {
    uint32_t lo, hi;
    if (rd32(f, at, &lo) || rd32(f, at + 4, &hi)) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* Position of field `voff` (4, 6, 8, ...) of the table at `table`; 0 = absent, -1 = corrupt. */
static long field(const fb *f, size_t table, unsigned voff) {
    uint32_t so;
    uint16_t vsize, off;
    if (rd32(f, table, &so)) return -1;
    long long vt = (long long)table - (long long)(int32_t)so;
    if (vt < 0 || (size_t)vt >= f->n) return -1;
    if (rd16(f, (size_t)vt, &vsize)) return -1;
    if (voff + 2 > vsize) return 0;
    if (rd16(f, (size_t)vt + voff, &off)) return -1;
    if (!off) return 0;
    if ((size_t)table + off >= f->n) return -1;
    return (long)(table + off);
}

/* Follow the uoffset stored at `at`. */
static long deref(const fb *f, size_t at) {
    uint32_t off;
    if (rd32(f, at, &off)) return -1;
    if ((uint64_t)at + off >= f->n) return -1;
    return (long)(at + off);
}

static long table_ref(const fb *f, size_t table, unsigned voff) {
    long p = field(f, table, voff);
    return p <= 0 ? p : deref(f, (size_t)p);
}

/* A vector field: its element count and the position of element 0. */
static int vector(const fb *f, size_t table, unsigned voff, uint32_t *count, size_t *first) {
    long v = table_ref(f, table, voff);
    *count = 0;
    if (v == 0) return 0;
    if (v < 0 || rd32(f, (size_t)v, count)) return -1;
    *first = (size_t)v + 4;
    if (*count > (f->n - *first) / 4) return -1;
    return 0;
}

/* A string field copied into out (truncated to size-1); 1 if present, 0 if absent, -1 if corrupt. */
static int string(const fb *f, size_t table, unsigned voff, char *out, size_t size) {
    long s = table_ref(f, table, voff);
    uint32_t len;
    if (s <= 0) return (int)s;
    if (rd32(f, (size_t)s, &len) || len > f->n - (size_t)s - 4) return -1;
    size_t m = len < size - 1 ? len : size - 1;
    memcpy(out, f->b + s + 4, m);
    out[m] = 0;
    return 1;
}

static const char *data_type_name(unsigned t) {
    static const char *const names[] = {"NONE", "GenericBinaryData", "Deprecated", "TFLiteModel", "SP_Tokenizer",
                                        "LlmMetadataProto", "HF_Tokenizer_Zlib", "TFLiteWeights",
                                        "EmbeddingMetadataProto", "ExecutorMetadataProto", "TtsMetadataProto",
                                        "AsrMetadataProto"};
    return t < sizeof names / sizeof *names ? names[t] : "unknown";
}

static int parse_header(const fb *f, emtp_bundle *b, emtp_error *err) {
    uint32_t root_off;
    if (rd32(f, 0, &root_off) || root_off >= f->n) goto corrupt;
    size_t root = root_off;
    long sm = table_ref(f, root, 6);
    if (sm <= 0) goto corrupt;
    uint32_t count;
    size_t first;
    if (vector(f, (size_t)sm, 4, &count, &first)) goto corrupt;
    if (count > 4096) goto corrupt;
    b->sections = calloc(count ? count : 1, sizeof *b->sections);
    if (!b->sections) return emtp_fail(err, EMTP_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < count; i++) {
        emtp_section *s = &b->sections[i];
        long obj = deref(f, first + 4 * i);
        if (obj < 0) goto corrupt;
        long p;
        s->begin = s->end = 0;
        if ((p = field(f, (size_t)obj, 6)) < 0 || (p && rd64(f, (size_t)p, &s->begin))) goto corrupt;
        if ((p = field(f, (size_t)obj, 8)) < 0 || (p && rd64(f, (size_t)p, &s->end))) goto corrupt;
        unsigned dtype = 0;
        if ((p = field(f, (size_t)obj, 10)) < 0) goto corrupt;
        if (p) dtype = f->b[p];
        snprintf(s->kind, sizeof s->kind, "%s", data_type_name(dtype));
        uint32_t n_items;
        size_t item0;
        if (vector(f, (size_t)obj, 4, &n_items, &item0)) goto corrupt;
        for (uint32_t j = 0; j < n_items; j++) {
            long kv = deref(f, item0 + 4 * j);
            if (kv < 0) goto corrupt;
            char key[64] = "", value[64] = "";
            if (string(f, (size_t)kv, 4, key, sizeof key) < 0) goto corrupt;
            long tp = field(f, (size_t)kv, 6);
            if (tp < 0) goto corrupt;
            if (!tp || f->b[tp] != 9) continue; /* only StringValue items matter here */
            long val = table_ref(f, (size_t)kv, 8);
            if (val < 0) goto corrupt;
            if (val == 0 || string(f, (size_t)val, 4, value, sizeof value) < 0) goto corrupt;
            if (!strcmp(key, "model_type") && value[0]) snprintf(s->kind, sizeof s->kind, "%s", value);
            if (!strcmp(key, "edge_mtp") && !strcmp(value, "manifest")) s->is_manifest = 1;
        }
        b->n_sections++;
    }
    return EMTP_OK;
corrupt:
    return emtp_fail(err, EMTP_EBUNDLE, "%s: corrupt .litertlm header", b->path);
}

int emtp_bundle_open(const char *path, emtp_bundle *b, emtp_error *err) {
    memset(b, 0, sizeof *b);
    size_t plen = strlen(path);
    b->path = malloc(plen + 1);
    if (!b->path) return emtp_fail(err, EMTP_ENOMEM, "out of memory");
    memcpy(b->path, path, plen + 1);
    FILE *f = fopen(path, "rb");
    if (!f) {
        emtp_fail(err, EMTP_EIO, "%s: cannot open the bundle", path);
        emtp_bundle_close(b);
        return EMTP_EIO;
    }
    int rc = EMTP_OK;
    unsigned char head[32];
    unsigned char *header = NULL;
    long size;
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        rc = emtp_fail(err, EMTP_EIO, "%s: cannot read the bundle", path);
        goto out;
    }
    b->size = (uint64_t)size;
    if (fread(head, 1, 32, f) != 32 || memcmp(head, "LITERTLM", 8)) {
        rc = emtp_fail(err, EMTP_EBUNDLE, "%s: not a .litertlm bundle (bad magic)", path);
        goto out;
    }
    uint64_t header_end = 0;
    for (int i = 7; i >= 0; i--) header_end = header_end << 8 | head[24 + i];
    if (!(header_end > 32 && header_end <= b->size) || header_end - 32 > (64u << 20)) {
        rc = emtp_fail(err, EMTP_EBUNDLE, "%s: truncated .litertlm header", path);
        goto out;
    }
    size_t hn = (size_t)(header_end - 32);
    header = malloc(hn);
    if (!header) {
        rc = emtp_fail(err, EMTP_ENOMEM, "out of memory");
        goto out;
    }
    if (fread(header, 1, hn, f) != hn) {
        rc = emtp_fail(err, EMTP_EBUNDLE, "%s: truncated .litertlm header", path);
        goto out;
    }
    fb fbuf = {header, hn};
    if ((rc = parse_header(&fbuf, b, err))) goto out;
    for (int i = 0; i < b->n_sections; i++) {
        const emtp_section *s = &b->sections[i];
        if (!(header_end <= s->begin && s->begin <= s->end && s->end <= b->size)) {
            rc = emtp_fail(err, EMTP_EBUNDLE, "%s: truncated bundle (section %s ends at byte %llu, file has %llu)",
                           path, s->kind, (unsigned long long)s->end, (unsigned long long)b->size);
            goto out;
        }
    }
out:
    free(header);
    fclose(f);
    if (rc) {
        int code = rc;
        emtp_bundle_close(b);
        return code;
    }
    return EMTP_OK;
}

void emtp_bundle_close(emtp_bundle *b) {
    free(b->path);
    free(b->sections);
    memset(b, 0, sizeof *b);
}

const emtp_section *emtp_bundle_find(const emtp_bundle *b, const char *kind) {
    for (int i = 0; i < b->n_sections; i++)
        if (!strcmp(b->sections[i].kind, kind)) return &b->sections[i];
    return NULL;
}

int emtp_bundle_read(const emtp_bundle *b, const emtp_section *s, unsigned char **data, size_t *size,
                     emtp_error *err) {
    *data = NULL;
    *size = 0;
    uint64_t n = s->end - s->begin;
    if (n > (uint64_t)(size_t)-1 / 2) return emtp_fail(err, EMTP_EBUNDLE, "%s: section too large", b->path);
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (!buf) return emtp_fail(err, EMTP_ENOMEM, "out of memory (%llu bytes)", (unsigned long long)n);
    FILE *f = fopen(b->path, "rb");
    int ok = f && !fseek(f, (long)s->begin, SEEK_SET) && fread(buf, 1, (size_t)n, f) == (size_t)n;
    if (f) fclose(f);
    if (!ok) {
        free(buf);
        return emtp_fail(err, EMTP_EIO, "%s: cannot read section %s", b->path, s->kind);
    }
    *data = buf;
    *size = (size_t)n;
    return EMTP_OK;
}

/* ---- the manifest ------------------------------------------------------------------------------ */
static int as_int(const emtp_json *j, int *v) {
    if (!j || j->type != EMTP_JSON_NUMBER || j->number != (double)(int)j->number) return -1;
    *v = (int)j->number;
    return 0;
}

int emtp_manifest_parse(const char *text, size_t n, emtp_manifest *m, emtp_error *err) {
    memset(m, 0, sizeof *m);
    emtp_json *root;
    int rc = emtp_json_parse(text, n, &root, err);
    if (rc) {
        if (rc == EMTP_EBUNDLE) {
            char why[sizeof err->message];
            snprintf(why, sizeof why, "%s", err->message);
            emtp_fail(err, EMTP_EBUNDLE, "the edge-mtp manifest section is not valid JSON (%s)", why);
        }
        return rc;
    }
    const char *bad = NULL;
    const emtp_json *kv = emtp_json_get(root, "kv_cache"), *stops = emtp_json_get(root, "stop_ids");
    if (as_int(emtp_json_get(root, "sliding_window"), &m->sliding_window)) bad = "sliding_window";
    else if (as_int(emtp_json_get(root, "vocab_size"), &m->vocab_size) || m->vocab_size < 1) bad = "vocab_size";
    else if (as_int(emtp_json_get(root, "draft_len"), &m->draft_len) || m->draft_len < 0) bad = "draft_len";
    else if (!kv || kv->type != EMTP_JSON_OBJECT || kv->count < 1 || kv->count > EMTP_MAX_KV) bad = "kv_cache";
    else if (!stops || stops->type != EMTP_JSON_ARRAY || stops->count > EMTP_MAX_STOP) bad = "stop_ids";
    if (!bad) {
        for (const emtp_json *c = kv->child; c && !bad; c = c->next) {
            int i = m->n_kv;
            if (strlen(c->key) >= sizeof m->kv_names[0] || c->type != EMTP_JSON_ARRAY || c->count < 1 || c->count > 4) {
                bad = "kv_cache";
                break;
            }
            snprintf(m->kv_names[i], sizeof m->kv_names[i], "%s", c->key);
            m->kv_rank[i] = c->count;
            for (int d = 0; d < c->count; d++)
                if (as_int(emtp_json_at(c, d), &m->kv_shape[i][d]) || m->kv_shape[i][d] < 1) bad = "kv_cache";
            if (!strcmp(c->key, "kv_cache_k_0") && c->count >= 3) m->context = m->kv_shape[i][2];
            m->n_kv++;
        }
        for (const emtp_json *c = stops->child; c && !bad; c = c->next) {
            int v = 0;
            if (as_int(c, &v)) bad = "stop_ids";
            m->stop_ids[m->n_stop++] = v;
        }
        if (!bad && m->context < 1) bad = "kv_cache (no kv_cache_k_0 [1, N, S, D])";
    }
    emtp_json_free(root);
    if (bad) return emtp_fail(err, EMTP_EBUNDLE, "the edge-mtp manifest has a missing or bad \"%s\"", bad);
    unsigned char digest[32];
    emtp_sha256((const unsigned char *)text, n, digest);
    int o = snprintf(m->model_id, sizeof m->model_id, "sha256:");
    for (int i = 0; i < 8; i++) o += snprintf(m->model_id + o, sizeof m->model_id - (size_t)o, "%02x", digest[i]);
    return EMTP_OK;
}

int emtp_bundle_manifest(const emtp_bundle *b, emtp_manifest *m, emtp_error *err) {
    const emtp_section *s = NULL;
    for (int i = 0; i < b->n_sections; i++)
        if (b->sections[i].is_manifest && !s) s = &b->sections[i];
    if (!s)
        return emtp_fail(err, EMTP_EBUNDLE, "%s: no edge-mtp manifest section (not exported by edge-export?)",
                         b->path);
    unsigned char *data;
    size_t n;
    int rc = emtp_bundle_read(b, s, &data, &n, err);
    if (rc) return rc;
    rc = emtp_manifest_parse((const char *)data, n, m, err);
    free(data);
    if (rc) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        emtp_fail(err, rc, "%s: %s", b->path, why);
    }
    return rc;
}
