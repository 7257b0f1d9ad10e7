/* A small JSON reader (a DOM of malloc'd nodes), enough for the bundle manifest. Rejects malformed
 * input with EMTP_EBUNDLE instead of crashing; nesting is limited to 64 levels. */
#include "edge_mtp.h"

#include <stdlib.h>
#include <string.h>

typedef struct parser {
    const char *s, *end, *base;
    int depth;
    emtp_error *err;
} parser;

static int fail(parser *p, const char *what) {
    return emtp_fail(p->err, EMTP_EBUNDLE, "invalid JSON at byte %ld: %s", (long)(p->s - p->base), what);
}

static void skip_ws(parser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

void emtp_json_free(emtp_json *node) {
    while (node) {
        emtp_json *next = node->next;
        emtp_json_free(node->child);
        free(node->string);
        free(node->key);
        free(node);
        node = next;
    }
}

static int put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int hex4(const char *s, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d > 15) return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

static int parse_string(parser *p, char **out) {
    /* p->s at the opening quote */
    const char *start = ++p->s;
    size_t cap = 0;
    while (p->s < p->end && *p->s != '"') {
        if (*p->s == '\\') p->s++;
        p->s++;
        cap++;
    }
    if (p->s >= p->end) return fail(p, "unterminated string");
    char *buf = malloc(4 * cap + 1), *o = buf;
    if (!buf) return emtp_fail(p->err, EMTP_ENOMEM, "out of memory (JSON)");
    for (const char *s = start; s < p->s; s++) {
        if ((unsigned char)*s < 0x20) {
            free(buf);
            return fail(p, "control character in a string");
        }
        if (*s != '\\') {
            *o++ = *s;
            continue;
        }
        s++;
        switch (*s) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (p->s - s < 5 || hex4(s + 1, &cp)) {
                free(buf);
                return fail(p, "bad \\u escape");
            }
            s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p->s - s >= 7 && s[1] == '\\' && s[2] == 'u') {
                unsigned lo;
                if (!hex4(s + 3, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    s += 6;
                }
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            free(buf);
            return fail(p, "bad escape");
        }
    }
    *o = 0;
    p->s++; /* closing quote */
    *out = buf;
    return EMTP_OK;
}

static int parse_value(parser *p, emtp_json **out);

static int parse_container(parser *p, emtp_json *node, char close) {
    int object = close == '}';
    emtp_json **tail = &node->child;
    p->s++;
    skip_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        return EMTP_OK;
    }
    for (;;) {
        char *key = NULL;
        int rc;
        if (object) {
            skip_ws(p);
            if (p->s >= p->end || *p->s != '"') return fail(p, "expected a member name");
            if ((rc = parse_string(p, &key))) return rc;
            skip_ws(p);
            if (p->s >= p->end || *p->s != ':') {
                free(key);
                return fail(p, "expected ':'");
            }
            p->s++;
        }
        emtp_json *child = NULL;
        if ((rc = parse_value(p, &child))) {
            free(key);
            return rc;
        }
        child->key = key;
        *tail = child;
        tail = &child->next;
        node->count++;
        skip_ws(p);
        if (p->s >= p->end) return fail(p, "unterminated container");
        if (*p->s == ',') {
            p->s++;
            continue;
        }
        if (*p->s == close) {
            p->s++;
            return EMTP_OK;
        }
        return fail(p, "expected ',' or the end of the container");
    }
}

static int parse_value(parser *p, emtp_json **out) {
    skip_ws(p);
    if (p->s >= p->end) return fail(p, "unexpected end");
    if (p->depth >= 64) return fail(p, "nested too deeply");
    emtp_json *node = calloc(1, sizeof *node);
    if (!node) return emtp_fail(p->err, EMTP_ENOMEM, "out of memory (JSON)");
    *out = node;
    int rc = EMTP_OK;
    char c = *p->s;
    size_t left = (size_t)(p->end - p->s);
    if (c == '{' || c == '[') {
        node->type = c == '{' ? EMTP_JSON_OBJECT : EMTP_JSON_ARRAY;
        p->depth++;
        rc = parse_container(p, node, c == '{' ? '}' : ']');
        p->depth--;
    } else if (c == '"') {
        node->type = EMTP_JSON_STRING;
        rc = parse_string(p, &node->string);
    } else if (left >= 4 && !memcmp(p->s, "true", 4)) {
        node->type = EMTP_JSON_BOOL;
        node->number = 1;
        p->s += 4;
    } else if (left >= 5 && !memcmp(p->s, "false", 5)) {
        node->type = EMTP_JSON_BOOL;
        p->s += 5;
    } else if (left >= 4 && !memcmp(p->s, "null", 4)) {
        node->type = EMTP_JSON_NULL;
        p->s += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char tmp[64];
        size_t n = 0;
        while (p->s + n < p->end && n < sizeof tmp - 1 && strchr("+-0123456789.eE", p->s[n])) n++;
        memcpy(tmp, p->s, n);
        tmp[n] = 0;
        char *stop;
        node->type = EMTP_JSON_NUMBER;
        node->number = strtod(tmp, &stop);
        if (stop != tmp + n || n == 0) rc = fail(p, "bad number");
        p->s += n;
    } else {
        rc = fail(p, "unexpected character");
    }
    if (rc) {
        emtp_json_free(node);
        *out = NULL;
    }
    return rc;
}

int emtp_json_parse(const char *text, size_t n, emtp_json **root, emtp_error *err) {
    parser p = {text, text + n, text, 0, err};
    *root = NULL;
    int rc = parse_value(&p, root);
    if (rc) return rc;
    skip_ws(&p);
    if (p.s != p.end) {
        emtp_json_free(*root);
        *root = NULL;
        return fail(&p, "trailing characters");
    }
    return EMTP_OK;
}

const emtp_json *emtp_json_get(const emtp_json *object, const char *key) {
    if (!object || object->type != EMTP_JSON_OBJECT) return NULL;
    for (const emtp_json *c = object->child; c; c = c->next)
        if (c->key && !strcmp(c->key, key)) return c;
    return NULL;
}

const emtp_json *emtp_json_at(const emtp_json *array, int index) {
    if (!array || array->type != EMTP_JSON_ARRAY || index < 0) return NULL;
    const emtp_json *c = array->child;
    while (c && index--) c = c->next;
    return c;
}
