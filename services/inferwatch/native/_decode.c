/* inferwatch.native._decode: a batch of prediction.v1 messages (UTF-8 JSON bytes) into flat columns.
 *
 * Wire format: one JSON object per message, prediction.v1 of inferwatch.contract.events (the pydantic
 * models there are the truth). The Python side is inferwatch.native.prediction_columns: decode_predictions()
 * wraps what this module returns into a PredictionColumns (numpy views of the byte buffers), and
 * decode_predictions_py() is the pure-Python twin this module must agree with.
 *
 * The safety rule: a row is ok only when the message is a prediction.v1 the contract accepts, decoded
 * to exactly the contract's values. Whatever this parser is not sure of is refused (row not ok, left
 * empty) and the caller decodes that message with its exact decoder: strict RFC 8259 JSON only
 * (whitespace, number grammar, escapes, UTF-8 without overlongs or surrogates, no control characters
 * in strings), no duplicate keys in the event, its outputs or its maps (nor among unknown keys), no
 * integer beyond int64, no number that overflows to infinity, no embedding/llm/lineage block, nesting
 * of skipped values at most MAX_DEPTH deep, plus every type and constraint of the contract.
 *
 * Speed notes: one pass over the bytes; strings without escapes or non-ASCII bytes are used in place;
 * keys and string values are interned per batch (a str object is created once per distinct value, and
 * the name pattern is checked once per distinct name); keys and short values that repeat at the same
 * place as in the previous row are recognised by one word compare; decimal numbers are converted
 * with Clinger's fast path (<= 15 digits, |exponent| <= 22), else the Eisel-Lemire algorithm when it
 * is exact, else PyOS_string_to_double (Python's own, correctly rounded, locale-independent), so every
 * float equals float(token) bit for bit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "contract_limits.h"     /* the contract's limits, generated from inferwatch/contract/limits.py */

#define MAX_DEPTH 64               /* nesting limit inside skipped (unknown) values (not a contract rule) */
#define TS_MIN IW_TS_MIN_MS        /* TimestampMs ge */
#define TS_MAX IW_TS_MAX_MS        /* TimestampMs le */
#define MAX_INPUTS IW_MAX_INPUTS
#define MAX_SEGMENT IW_MAX_SEGMENT
#define MAX_TAGS IW_MAX_TAGS
#define MAX_PROBS IW_MAX_PROBABILITIES
#define SHORT_TEXT IW_SHORT_TEXT_MAX   /* ShortText max_length, code points */
#define MAX_ERROR IW_ERROR_MAX

#define NAME_OK 1u                 /* the name alphabet, 1..IW_NAME_MAX */
#define VERSION_OK 2u              /* the name alphabet, 1..IW_VERSION_MAX */
#define PLAIN 4u                   /* no '"', '\\' or control character: its JSON form is its bytes */
#define SHORT 8u                   /* at most SHORT_TEXT code points */

/* Parsers return OK (1), REFUSE (0: the row is not ok) or FAIL (-1: a Python exception is set). */
#define OK 1
#define REFUSE 0
#define FAIL (-1)
#define TRY(x) do { int rc_ = (x); if (rc_ != OK) return rc_; } while (0)

/* ---------------------------------------------------------------------------------------------
 * growable byte vectors (the flat columns and the scratch buffer of decoded strings)
 */
typedef struct {
    char *p;
    size_t len, cap;
} Vec;

static int vec_grow(Vec *v, size_t extra) {
    size_t nc = v->cap ? v->cap * 2 : 4096;
    while (nc < v->len + extra) nc *= 2;
    char *np_ = PyMem_Realloc(v->p, nc);
    if (np_ == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    v->p = np_;
    v->cap = nc;
    return OK;
}

static inline int vec_reserve(Vec *v, size_t extra) {
    return v->len + extra <= v->cap ? OK : vec_grow(v, extra);
}

/* A push into room reserved before (vec_reserve). */
#define VEC_PUT(v, T, x) do { \
        T tmp_ = (x); memcpy((v)->p + (v)->len, &tmp_, sizeof(T)); (v)->len += sizeof(T); \
    } while (0)


/* ---------------------------------------------------------------------------------------------
 * per-batch interning: distinct UTF-8 byte strings -> index, with the str object made once.
 * Entries are only ever removed newest-first (a refused row takes back what it added), which a
 * chained table with insertion at the chain's head supports by restoring the bucket's head.
 */
/* A decoded JSON string: UTF-8 bytes (in the message or in the scratch buffer), code points. */
typedef struct {
    const char *p;
    size_t len;
    size_t cps;
    int ascii;
    const char *lim;  /* bytes up to here are readable (word-wise hashing and compares) */
} Str;

typedef struct {
    uint64_t h;
    uint32_t koff, klen;   /* key bytes in the arena */
    int32_t next;          /* chain */
    uint32_t stamp;        /* last map (per-row) that used this key: duplicate detection */
    uint32_t flags;        /* NAME_OK / VERSION_OK */
    PyObject *obj;         /* the str (NULL for tables without objects) */
    uint64_t qw, qmask;    /* PLAIN and at most 7 bytes: its bytes and the closing quote as a word
                            * (qmask selects them), else qmask 0: match_entry in one compare */
} Ent;

typedef struct {
    Ent *e;
    int32_t n, cap;
    int32_t *b;
    uint32_t mask;
    char *a;
    size_t alen, acap;
    int make_obj;
} Intern;

#define ARENA_SLACK 16  /* readable bytes after the arena's last key: word-wise compares */

/* n (1..8) bytes at p as a little-endian word, zero-padded; one load when lim allows reading 8. */
static inline uint64_t load_word(const char *p, size_t n, const char *lim) {
    uint64_t w = 0;
    if (lim - p >= 8) {
        memcpy(&w, p, 8);
        if (n < 8) w &= ((uint64_t)1 << (8 * n)) - 1;
    } else {
        for (size_t i = 0; i < n; i++) w |= (uint64_t)(unsigned char)p[i] << (8 * i);
    }
    return w;
}

/* Hash of n bytes at p (bytes up to lim are readable). */
static inline uint64_t hash_bytes(const char *p, size_t n, const char *lim) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n) {
        h = (h ^ load_word(p, n, lim)) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    h *= 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 29);
}

/* n bytes at a (readable up to lim) equal n bytes at b (an arena key: ARENA_SLACK readable after). */
static inline int same_bytes(const char *a, const char *b, size_t n, const char *lim) {
    if (n <= 16 && lim - a >= 16) {
        uint64_t x0, y0, x1, y1;
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, a + 8, 8);
        memcpy(&y1, b + 8, 8);
        uint64_t m0 = n >= 8 ? ~(uint64_t)0 : ((uint64_t)1 << (8 * n)) - 1;
        uint64_t m1 = n >= 16 ? ~(uint64_t)0 : n <= 8 ? 0 : ((uint64_t)1 << (8 * (n - 8))) - 1;
        return (((x0 ^ y0) & m0) | ((x1 ^ y1) & m1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

static int intern_init(Intern *t, int make_obj) {
    memset(t, 0, sizeof *t);
    t->make_obj = make_obj;
    t->mask = 255;
    t->b = PyMem_Malloc(sizeof(int32_t) * 256);
    if (t->b == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    memset(t->b, 0xff, sizeof(int32_t) * 256);
    return OK;
}

static void intern_free(Intern *t) {
    for (int32_t i = 0; i < t->n; i++) Py_XDECREF(t->e[i].obj);
    PyMem_Free(t->e);
    PyMem_Free(t->b);
    PyMem_Free(t->a);
    memset(t, 0, sizeof *t);
}

static void intern_truncate(Intern *t, int32_t n0) {
    while (t->n > n0) {
        Ent *e = &t->e[--t->n];
        t->b[e->h & t->mask] = e->next;
        Py_CLEAR(e->obj);
        t->alen = e->koff;
    }
}

static const unsigned char NAME_CHARS[256] = IW_NAME_CHARS_INIT;

/* The contract's Name/Version patterns; the alphabet is ASCII, so bytes are code points. */
static uint32_t name_flags(const char *p, size_t n) {
    if (n == 0 || n > IW_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!NAME_CHARS[(unsigned char)p[i]]) return 0;
    return n <= IW_VERSION_MAX ? (NAME_OK | VERSION_OK) : NAME_OK;
}


static PyObject *make_str(const Str *s) {
    if (s->ascii) {
        PyObject *o = PyUnicode_New((Py_ssize_t)s->len, 127);
        if (o != NULL) memcpy(PyUnicode_1BYTE_DATA(o), s->p, s->len);
        return o;
    }
    return PyUnicode_DecodeUTF8(s->p, (Py_ssize_t)s->len, "strict");
}

static int intern_rehash(Intern *t) {
    uint32_t nm = t->mask * 2 + 1;
    int32_t *nb = PyMem_Malloc(sizeof(int32_t) * ((size_t)nm + 1));
    if (nb == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    memset(nb, 0xff, sizeof(int32_t) * ((size_t)nm + 1));
    for (int32_t i = 0; i < t->n; i++) {  /* ascending: each chain's head stays its newest entry */
        uint32_t s = (uint32_t)(t->e[i].h & nm);
        t->e[i].next = nb[s];
        nb[s] = i;
    }
    PyMem_Free(t->b);
    t->b = nb;
    t->mask = nm;
    return OK;
}

/* Index of s in t (added when new); -1 with an exception set on failure. */
static int32_t intern(Intern *t, const Str *s) {
    uint64_t h = hash_bytes(s->p, s->len, s->lim);
    for (int32_t i = t->b[h & t->mask]; i >= 0; i = t->e[i].next) {
        Ent *e = &t->e[i];
        if (e->h == h && e->klen == s->len && same_bytes(s->p, t->a + e->koff, s->len, s->lim)) return i;
    }
    if (t->n == INT32_MAX || s->len > UINT32_MAX / 2) {
        PyErr_SetString(PyExc_OverflowError, "too many distinct strings in one batch");
        return -1;
    }
    if ((uint32_t)t->n >= (t->mask + 1) / 4 * 3 && intern_rehash(t) != OK) return -1;
    if (t->n == t->cap) {
        int32_t nc = t->cap ? t->cap * 2 : 256;
        Ent *ne = PyMem_Realloc(t->e, sizeof(Ent) * (size_t)nc);
        if (ne == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->e = ne;
        t->cap = nc;
    }
    if (t->alen + s->len + ARENA_SLACK > t->acap) {
        size_t nc = t->acap ? t->acap * 2 : 8192;
        while (nc < t->alen + s->len + ARENA_SLACK) nc *= 2;
        if (nc > UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "too many distinct strings in one batch");
            return -1;
        }
        char *na = PyMem_Realloc(t->a, nc);
        if (na == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->a = na;
        t->acap = nc;
    }
    PyObject *obj = NULL;
    if (t->make_obj && (obj = make_str(s)) == NULL) return -1;
    Ent *e = &t->e[t->n];
    e->h = h;
    e->koff = (uint32_t)t->alen;
    e->klen = (uint32_t)s->len;
    if (s->len) memcpy(t->a + t->alen, s->p, s->len);
    t->alen += s->len;
    e->stamp = 0;
    e->flags = (s->ascii ? name_flags(s->p, s->len) : 0) | (s->cps <= SHORT_TEXT ? SHORT : 0);
    int plain = 1;
    for (size_t i = 0; i < s->len; i++) {
        unsigned char c = (unsigned char)s->p[i];
        plain &= c >= 0x20 && c != '"' && c != '\\';
    }
    e->qw = e->qmask = 0;
    if (plain) {
        e->flags |= PLAIN;
        if (s->len < 8) {
            uint64_t w = 0;
            for (size_t i = 0; i < s->len; i++) w |= (uint64_t)(unsigned char)s->p[i] << (8 * i);
            e->qw = w | ((uint64_t)'"' << (8 * s->len));
            e->qmask = s->len == 7 ? ~(uint64_t)0 : ((uint64_t)1 << (8 * (s->len + 1))) - 1;
        }
    }
    e->obj = obj;
    e->next = t->b[h & t->mask];
    t->b[h & t->mask] = t->n;
    return t->n++;
}

/* When the message at p (just after an opening quote) holds exactly entry k's text and then the
 * closing quote, the position after that quote: a key or value that repeats at the same place as in
 * the previous row is recognised without decoding or hashing it. NULL otherwise. */
static inline const unsigned char *match_entry(const Intern *t, int32_t k, const unsigned char *p,
                                               const unsigned char *end) {
    if ((uint32_t)k >= (uint32_t)t->n) return NULL;  /* also k < 0: no previous row */
    const Ent *e = &t->e[k];
    if (e->qmask && end - p >= 8) {  /* the common short key or value: one word */
        uint64_t w;
        memcpy(&w, p, 8);
        return ((w ^ e->qw) & e->qmask) == 0 ? p + e->klen + 1 : NULL;
    }
    size_t n = e->klen;
    if (!(e->flags & PLAIN) || (size_t)(end - p) <= n || p[n] != '"') return NULL;
    if (!same_bytes((const char *)p, t->a + e->koff, n, (const char *)end)) return NULL;
    return p + n + 1;
}

/* ---------------------------------------------------------------------------------------------
 * decoder state
 */
#define KEY_SLOTS 16   /* positions of known keys remembered per object (top level, outputs) */
#define KEY_NONE 0xFF

enum { V_IN_KEY, V_IN_KIND, V_IN_NUM, V_IN_CAT, V_PROB_KEY, V_PROB_VAL, V_SEG_KEY, V_SEG_VAL, V_TAG_KEY,
       V_TAG_VAL, N_VECS };
enum { MAP_INPUTS, MAP_SEGMENT, MAP_TAGS, MAP_PROBS, N_MAPS };
static const size_t MAP_MAX[N_MAPS] = {MAX_INPUTS, MAX_SEGMENT, MAX_TAGS, MAX_PROBS};
static const int MAP_KEYS[N_MAPS] = {V_IN_KEY, V_SEG_KEY, V_TAG_KEY, V_PROB_KEY};

typedef struct {
    const unsigned char *end;
    Vec scratch;
    Intern names, strings, models, unknown;
    uint32_t stamp;
    Vec v[N_VECS];
    /* the previous row's keys and string values by position, per map (see match_entry) */
    int32_t *pred_key[N_MAPS], *pred_val[N_MAPS];
    int32_t pred_label, pred_model, pred_version;
    /* the previous row's known top-level and outputs keys by position (index into TOP_KEYS /
     * OUT_KEYS, KEY_NONE for an unknown key or none): see match_key */
    uint8_t pred_top[KEY_SLOTS], pred_out[KEY_SLOTS];
} D;

#define WS_BITS ((1ull << ' ') | (1ull << '\n') | (1ull << '\r') | (1ull << '\t'))

/* JSON whitespace skipped; every byte that may follow it in valid JSON is above ' ', so compact
 * JSON (no whitespace at all, the common case) costs one test. */
static inline const unsigned char *ws(const unsigned char *p, const unsigned char *end) {
    while (p < end && __builtin_expect(*p <= ' ', 0) && ((WS_BITS >> *p) & 1)) p++;
    return p;
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static int read_u4(const unsigned char *p, const unsigned char *end, uint32_t *out) {
    if (end - p < 4) return REFUSE;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return REFUSE;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return OK;
}

/* *pp is just after the opening quote; on OK it is just after the closing one. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static int parse_string(D *d, const unsigned char **pp, Str *s) {
    const unsigned char *p = *pp, *end = d->end, *start = p;
    /* 8 bytes at a time: stop at the first '"', '\\', control character or non-ASCII byte (the
     * first flagged byte is exact: a borrow only ever spills into bytes above a flagged one) */
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
        uint64_t m = ((w - ONES * 0x20) | w | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
        if (m) {
            p += __builtin_ctzll(m) >> 3;
            break;
        }
        p += 8;
    }
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') {
            s->p = (const char *)start;
            s->len = s->cps = (size_t)(p - start);
            s->ascii = 1;
            s->lim = (const char *)end;
            *pp = p + 1;
            return OK;
        }
        if (c == '\\' || c < 0x20 || c >= 0x80) break;
        p++;
    }
    if (p >= end || *p < 0x20) return REFUSE;
    /* Slow path: escapes or non-ASCII. Decoded bytes never outnumber the encoded ones. */
    Vec *sc = &d->scratch;
    sc->len = 0;
    TRY(vec_reserve(sc, (size_t)(end - start) + ARENA_SLACK));
    unsigned char *o = (unsigned char *)sc->p;
    size_t cps = (size_t)(p - start);
    memcpy(o, start, cps);
    o += cps;
    int ascii = 1;
    for (;;) {
        if (p >= end) return REFUSE;
        unsigned char c = *p;
        if (c == '"') break;
        if (c < 0x20) return REFUSE;
        if (c < 0x80) {
            if (c != '\\') {
                *o++ = c;
                p++;
                cps++;
                continue;
            }
            if (end - p < 2) return REFUSE;
            unsigned char e = p[1];
            p += 2;
            cps++;
            switch (e) {
            case '"': *o++ = '"'; continue;
            case '\\': *o++ = '\\'; continue;
            case '/': *o++ = '/'; continue;
            case 'b': *o++ = '\b'; continue;
            case 'f': *o++ = '\f'; continue;
            case 'n': *o++ = '\n'; continue;
            case 'r': *o++ = '\r'; continue;
            case 't': *o++ = '\t'; continue;
            case 'u': break;
            default: return REFUSE;
            }
            uint32_t cp;
            TRY(read_u4(p, end, &cp));
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return REFUSE;  /* lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return REFUSE;
                TRY(read_u4(p + 2, end, &lo));
                if (lo < 0xDC00 || lo > 0xDFFF) return REFUSE;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) {
                *o++ = (unsigned char)cp;
            } else if (cp < 0x800) {
                *o++ = (unsigned char)(0xC0 | (cp >> 6));
                *o++ = (unsigned char)(0x80 | (cp & 0x3F));
                ascii = 0;
            } else if (cp < 0x10000) {
                *o++ = (unsigned char)(0xE0 | (cp >> 12));
                *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (unsigned char)(0x80 | (cp & 0x3F));
                ascii = 0;
            } else {
                *o++ = (unsigned char)(0xF0 | (cp >> 18));
                *o++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                *o++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (unsigned char)(0x80 | (cp & 0x3F));
                ascii = 0;
            }
            continue;
        }
        /* UTF-8 sequence: shortest form only, no surrogates, at most U+10FFFF (RFC 3629 table) */
        int n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) { n = 2; lo = 0xA0; }
        else if (c >= 0xE1 && c <= 0xEC) n = 2;
        else if (c == 0xED) { n = 2; hi = 0x9F; }
        else if (c >= 0xEE && c <= 0xEF) n = 2;
        else if (c == 0xF0) { n = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else if (c == 0xF4) { n = 3; hi = 0x8F; }
        else return REFUSE;
        if (end - p <= n) return REFUSE;
        if (p[1] < lo || p[1] > hi) return REFUSE;
        for (int k = 2; k <= n; k++)
            if ((p[k] & 0xC0) != 0x80) return REFUSE;
        memcpy(o, p, (size_t)n + 1);
        o += n + 1;
        p += n + 1;
        cps++;
        ascii = 0;
    }
    s->p = sc->p;
    s->len = (size_t)(o - (unsigned char *)sc->p);
    s->cps = cps;
    s->ascii = ascii;
    s->lim = sc->p + sc->cap;
    *pp = p + 1;
    return OK;
}

/* ---------------------------------------------------------------------------------------------
 * numbers: RFC 8259 grammar; integers exactly in int64; other numbers exactly as Python's float()
 */
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

typedef struct {
    int is_int;
    int64_t i;
    double d;   /* the value as a float (an integer converted like Python's float(int)) */
} Num;

/* Eisel-Lemire's table: 5^q as a 128-bit number with its top bit set (truncated for q >= 0; for
 * q < 0 the reciprocal 2^b / 5^-q plus one, with b = z + 127 when q >= -27 and b = 2z + 128 below,
 * z = ceil(log2 5^-q), then truncated to 128 bits), {high, low}. Generated with Python's exact integers; the
 * range covers every decimal exponent of ordinary data, others take PyOS_string_to_double. */
#define POW5_MIN_Q (-100)
#define POW5_MAX_Q 100
static const uint64_t POW5_128[][2] = {
    {0xdff9772470297ebdu, 0x59787e2b93bc56f7u},  /* 5^-100 */
    {0x8bfbea76c619ef36u, 0x57eb4edb3c55b65au},  /* 5^-99 */
    {0xaefae51477a06b03u, 0xede622920b6b23f1u},  /* 5^-98 */
    {0xdab99e59958885c4u, 0xe95fab368e45ecedu},  /* 5^-97 */
    {0x88b402f7fd75539bu, 0x11dbcb0218ebb414u},  /* 5^-96 */
    {0xaae103b5fcd2a881u, 0xd652bdc29f26a119u},  /* 5^-95 */
    {0xd59944a37c0752a2u, 0x4be76d3346f0495fu},  /* 5^-94 */
    {0x857fcae62d8493a5u, 0x6f70a4400c562ddbu},  /* 5^-93 */
    {0xa6dfbd9fb8e5b88eu, 0xcb4ccd500f6bb952u},  /* 5^-92 */
    {0xd097ad07a71f26b2u, 0x7e2000a41346a7a7u},  /* 5^-91 */
    {0x825ecc24c873782fu, 0x8ed400668c0c28c8u},  /* 5^-90 */
    {0xa2f67f2dfa90563bu, 0x728900802f0f32fau},  /* 5^-89 */
    {0xcbb41ef979346bcau, 0x4f2b40a03ad2ffb9u},  /* 5^-88 */
    {0xfea126b7d78186bcu, 0xe2f610c84987bfa8u},  /* 5^-87 */
    {0x9f24b832e6b0f436u, 0x0dd9ca7d2df4d7c9u},  /* 5^-86 */
    {0xc6ede63fa05d3143u, 0x91503d1c79720dbbu},  /* 5^-85 */
    {0xf8a95fcf88747d94u, 0x75a44c6397ce912au},  /* 5^-84 */
    {0x9b69dbe1b548ce7cu, 0xc986afbe3ee11abau},  /* 5^-83 */
    {0xc24452da229b021bu, 0xfbe85badce996168u},  /* 5^-82 */
    {0xf2d56790ab41c2a2u, 0xfae27299423fb9c3u},  /* 5^-81 */
    {0x97c560ba6b0919a5u, 0xdccd879fc967d41au},  /* 5^-80 */
    {0xbdb6b8e905cb600fu, 0x5400e987bbc1c920u},  /* 5^-79 */
    {0xed246723473e3813u, 0x290123e9aab23b68u},  /* 5^-78 */
    {0x9436c0760c86e30bu, 0xf9a0b6720aaf6521u},  /* 5^-77 */
    {0xb94470938fa89bceu, 0xf808e40e8d5b3e69u},  /* 5^-76 */
    {0xe7958cb87392c2c2u, 0xb60b1d1230b20e04u},  /* 5^-75 */
    {0x90bd77f3483bb9b9u, 0xb1c6f22b5e6f48c2u},  /* 5^-74 */
    {0xb4ecd5f01a4aa828u, 0x1e38aeb6360b1af3u},  /* 5^-73 */
    {0xe2280b6c20dd5232u, 0x25c6da63c38de1b0u},  /* 5^-72 */
    {0x8d590723948a535fu, 0x579c487e5a38ad0eu},  /* 5^-71 */
    {0xb0af48ec79ace837u, 0x2d835a9df0c6d851u},  /* 5^-70 */
    {0xdcdb1b2798182244u, 0xf8e431456cf88e65u},  /* 5^-69 */
    {0x8a08f0f8bf0f156bu, 0x1b8e9ecb641b58ffu},  /* 5^-68 */
    {0xac8b2d36eed2dac5u, 0xe272467e3d222f3fu},  /* 5^-67 */
    {0xd7adf884aa879177u, 0x5b0ed81dcc6abb0fu},  /* 5^-66 */
    {0x86ccbb52ea94baeau, 0x98e947129fc2b4e9u},  /* 5^-65 */
    {0xa87fea27a539e9a5u, 0x3f2398d747b36224u},  /* 5^-64 */
    {0xd29fe4b18e88640eu, 0x8eec7f0d19a03aadu},  /* 5^-63 */
    {0x83a3eeeef9153e89u, 0x1953cf68300424acu},  /* 5^-62 */
    {0xa48ceaaab75a8e2bu, 0x5fa8c3423c052dd7u},  /* 5^-61 */
    {0xcdb02555653131b6u, 0x3792f412cb06794du},  /* 5^-60 */
    {0x808e17555f3ebf11u, 0xe2bbd88bbee40bd0u},  /* 5^-59 */
    {0xa0b19d2ab70e6ed6u, 0x5b6aceaeae9d0ec4u},  /* 5^-58 */
    {0xc8de047564d20a8bu, 0xf245825a5a445275u},  /* 5^-57 */
    {0xfb158592be068d2eu, 0xeed6e2f0f0d56712u},  /* 5^-56 */
    {0x9ced737bb6c4183du, 0x55464dd69685606bu},  /* 5^-55 */
    {0xc428d05aa4751e4cu, 0xaa97e14c3c26b886u},  /* 5^-54 */
    {0xf53304714d9265dfu, 0xd53dd99f4b3066a8u},  /* 5^-53 */
    {0x993fe2c6d07b7fabu, 0xe546a8038efe4029u},  /* 5^-52 */
    {0xbf8fdb78849a5f96u, 0xde98520472bdd033u},  /* 5^-51 */
    {0xef73d256a5c0f77cu, 0x963e66858f6d4440u},  /* 5^-50 */
    {0x95a8637627989aadu, 0xdde7001379a44aa8u},  /* 5^-49 */
    {0xbb127c53b17ec159u, 0x5560c018580d5d52u},  /* 5^-48 */
    {0xe9d71b689dde71afu, 0xaab8f01e6e10b4a6u},  /* 5^-47 */
    {0x9226712162ab070du, 0xcab3961304ca70e8u},  /* 5^-46 */
    {0xb6b00d69bb55c8d1u, 0x3d607b97c5fd0d22u},  /* 5^-45 */
    {0xe45c10c42a2b3b05u, 0x8cb89a7db77c506au},  /* 5^-44 */
    {0x8eb98a7a9a5b04e3u, 0x77f3608e92adb242u},  /* 5^-43 */
    {0xb267ed1940f1c61cu, 0x55f038b237591ed3u},  /* 5^-42 */
    {0xdf01e85f912e37a3u, 0x6b6c46dec52f6688u},  /* 5^-41 */
    {0x8b61313bbabce2c6u, 0x2323ac4b3b3da015u},  /* 5^-40 */
    {0xae397d8aa96c1b77u, 0xabec975e0a0d081au},  /* 5^-39 */
    {0xd9c7dced53c72255u, 0x96e7bd358c904a21u},  /* 5^-38 */
    {0x881cea14545c7575u, 0x7e50d64177da2e54u},  /* 5^-37 */
    {0xaa242499697392d2u, 0xdde50bd1d5d0b9e9u},  /* 5^-36 */
    {0xd4ad2dbfc3d07787u, 0x955e4ec64b44e864u},  /* 5^-35 */
    {0x84ec3c97da624ab4u, 0xbd5af13bef0b113eu},  /* 5^-34 */
    {0xa6274bbdd0fadd61u, 0xecb1ad8aeacdd58eu},  /* 5^-33 */
    {0xcfb11ead453994bau, 0x67de18eda5814af2u},  /* 5^-32 */
    {0x81ceb32c4b43fcf4u, 0x80eacf948770ced7u},  /* 5^-31 */
    {0xa2425ff75e14fc31u, 0xa1258379a94d028du},  /* 5^-30 */
    {0xcad2f7f5359a3b3eu, 0x096ee45813a04330u},  /* 5^-29 */
    {0xfd87b5f28300ca0du, 0x8bca9d6e188853fcu},  /* 5^-28 */
    {0x9e74d1b791e07e48u, 0x775ea264cf55347eu},  /* 5^-27 */
    {0xc612062576589ddau, 0x95364afe032a819eu},  /* 5^-26 */
    {0xf79687aed3eec551u, 0x3a83ddbd83f52205u},  /* 5^-25 */
    {0x9abe14cd44753b52u, 0xc4926a9672793543u},  /* 5^-24 */
    {0xc16d9a0095928a27u, 0x75b7053c0f178294u},  /* 5^-23 */
    {0xf1c90080baf72cb1u, 0x5324c68b12dd6339u},  /* 5^-22 */
    {0x971da05074da7beeu, 0xd3f6fc16ebca5e04u},  /* 5^-21 */
    {0xbce5086492111aeau, 0x88f4bb1ca6bcf585u},  /* 5^-20 */
    {0xec1e4a7db69561a5u, 0x2b31e9e3d06c32e6u},  /* 5^-19 */
    {0x9392ee8e921d5d07u, 0x3aff322e62439fd0u},  /* 5^-18 */
    {0xb877aa3236a4b449u, 0x09befeb9fad487c3u},  /* 5^-17 */
    {0xe69594bec44de15bu, 0x4c2ebe687989a9b4u},  /* 5^-16 */
    {0x901d7cf73ab0acd9u, 0x0f9d37014bf60a11u},  /* 5^-15 */
    {0xb424dc35095cd80fu, 0x538484c19ef38c95u},  /* 5^-14 */
    {0xe12e13424bb40e13u, 0x2865a5f206b06fbau},  /* 5^-13 */
    {0x8cbccc096f5088cbu, 0xf93f87b7442e45d4u},  /* 5^-12 */
    {0xafebff0bcb24aafeu, 0xf78f69a51539d749u},  /* 5^-11 */
    {0xdbe6fecebdedd5beu, 0xb573440e5a884d1cu},  /* 5^-10 */
    {0x89705f4136b4a597u, 0x31680a88f8953031u},  /* 5^-9 */
    {0xabcc77118461cefcu, 0xfdc20d2b36ba7c3eu},  /* 5^-8 */
    {0xd6bf94d5e57a42bcu, 0x3d32907604691b4du},  /* 5^-7 */
    {0x8637bd05af6c69b5u, 0xa63f9a49c2c1b110u},  /* 5^-6 */
    {0xa7c5ac471b478423u, 0x0fcf80dc33721d54u},  /* 5^-5 */
    {0xd1b71758e219652bu, 0xd3c36113404ea4a9u},  /* 5^-4 */
    {0x83126e978d4fdf3bu, 0x645a1cac083126eau},  /* 5^-3 */
    {0xa3d70a3d70a3d70au, 0x3d70a3d70a3d70a4u},  /* 5^-2 */
    {0xccccccccccccccccu, 0xcccccccccccccccdu},  /* 5^-1 */
    {0x8000000000000000u, 0x0000000000000000u},  /* 5^0 */
    {0xa000000000000000u, 0x0000000000000000u},  /* 5^1 */
    {0xc800000000000000u, 0x0000000000000000u},  /* 5^2 */
    {0xfa00000000000000u, 0x0000000000000000u},  /* 5^3 */
    {0x9c40000000000000u, 0x0000000000000000u},  /* 5^4 */
    {0xc350000000000000u, 0x0000000000000000u},  /* 5^5 */
    {0xf424000000000000u, 0x0000000000000000u},  /* 5^6 */
    {0x9896800000000000u, 0x0000000000000000u},  /* 5^7 */
    {0xbebc200000000000u, 0x0000000000000000u},  /* 5^8 */
    {0xee6b280000000000u, 0x0000000000000000u},  /* 5^9 */
    {0x9502f90000000000u, 0x0000000000000000u},  /* 5^10 */
    {0xba43b74000000000u, 0x0000000000000000u},  /* 5^11 */
    {0xe8d4a51000000000u, 0x0000000000000000u},  /* 5^12 */
    {0x9184e72a00000000u, 0x0000000000000000u},  /* 5^13 */
    {0xb5e620f480000000u, 0x0000000000000000u},  /* 5^14 */
    {0xe35fa931a0000000u, 0x0000000000000000u},  /* 5^15 */
    {0x8e1bc9bf04000000u, 0x0000000000000000u},  /* 5^16 */
    {0xb1a2bc2ec5000000u, 0x0000000000000000u},  /* 5^17 */
    {0xde0b6b3a76400000u, 0x0000000000000000u},  /* 5^18 */
    {0x8ac7230489e80000u, 0x0000000000000000u},  /* 5^19 */
    {0xad78ebc5ac620000u, 0x0000000000000000u},  /* 5^20 */
    {0xd8d726b7177a8000u, 0x0000000000000000u},  /* 5^21 */
    {0x878678326eac9000u, 0x0000000000000000u},  /* 5^22 */
    {0xa968163f0a57b400u, 0x0000000000000000u},  /* 5^23 */
    {0xd3c21bcecceda100u, 0x0000000000000000u},  /* 5^24 */
    {0x84595161401484a0u, 0x0000000000000000u},  /* 5^25 */
    {0xa56fa5b99019a5c8u, 0x0000000000000000u},  /* 5^26 */
    {0xcecb8f27f4200f3au, 0x0000000000000000u},  /* 5^27 */
    {0x813f3978f8940984u, 0x4000000000000000u},  /* 5^28 */
    {0xa18f07d736b90be5u, 0x5000000000000000u},  /* 5^29 */
    {0xc9f2c9cd04674edeu, 0xa400000000000000u},  /* 5^30 */
    {0xfc6f7c4045812296u, 0x4d00000000000000u},  /* 5^31 */
    {0x9dc5ada82b70b59du, 0xf020000000000000u},  /* 5^32 */
    {0xc5371912364ce305u, 0x6c28000000000000u},  /* 5^33 */
    {0xf684df56c3e01bc6u, 0xc732000000000000u},  /* 5^34 */
    {0x9a130b963a6c115cu, 0x3c7f400000000000u},  /* 5^35 */
    {0xc097ce7bc90715b3u, 0x4b9f100000000000u},  /* 5^36 */
    {0xf0bdc21abb48db20u, 0x1e86d40000000000u},  /* 5^37 */
    {0x96769950b50d88f4u, 0x1314448000000000u},  /* 5^38 */
    {0xbc143fa4e250eb31u, 0x17d955a000000000u},  /* 5^39 */
    {0xeb194f8e1ae525fdu, 0x5dcfab0800000000u},  /* 5^40 */
    {0x92efd1b8d0cf37beu, 0x5aa1cae500000000u},  /* 5^41 */
    {0xb7abc627050305adu, 0xf14a3d9e40000000u},  /* 5^42 */
    {0xe596b7b0c643c719u, 0x6d9ccd05d0000000u},  /* 5^43 */
    {0x8f7e32ce7bea5c6fu, 0xe4820023a2000000u},  /* 5^44 */
    {0xb35dbf821ae4f38bu, 0xdda2802c8a800000u},  /* 5^45 */
    {0xe0352f62a19e306eu, 0xd50b2037ad200000u},  /* 5^46 */
    {0x8c213d9da502de45u, 0x4526f422cc340000u},  /* 5^47 */
    {0xaf298d050e4395d6u, 0x9670b12b7f410000u},  /* 5^48 */
    {0xdaf3f04651d47b4cu, 0x3c0cdd765f114000u},  /* 5^49 */
    {0x88d8762bf324cd0fu, 0xa5880a69fb6ac800u},  /* 5^50 */
    {0xab0e93b6efee0053u, 0x8eea0d047a457a00u},  /* 5^51 */
    {0xd5d238a4abe98068u, 0x72a4904598d6d880u},  /* 5^52 */
    {0x85a36366eb71f041u, 0x47a6da2b7f864750u},  /* 5^53 */
    {0xa70c3c40a64e6c51u, 0x999090b65f67d924u},  /* 5^54 */
    {0xd0cf4b50cfe20765u, 0xfff4b4e3f741cf6du},  /* 5^55 */
    {0x82818f1281ed449fu, 0xbff8f10e7a8921a4u},  /* 5^56 */
    {0xa321f2d7226895c7u, 0xaff72d52192b6a0du},  /* 5^57 */
    {0xcbea6f8ceb02bb39u, 0x9bf4f8a69f764490u},  /* 5^58 */
    {0xfee50b7025c36a08u, 0x02f236d04753d5b4u},  /* 5^59 */
    {0x9f4f2726179a2245u, 0x01d762422c946590u},  /* 5^60 */
    {0xc722f0ef9d80aad6u, 0x424d3ad2b7b97ef5u},  /* 5^61 */
    {0xf8ebad2b84e0d58bu, 0xd2e0898765a7deb2u},  /* 5^62 */
    {0x9b934c3b330c8577u, 0x63cc55f49f88eb2fu},  /* 5^63 */
    {0xc2781f49ffcfa6d5u, 0x3cbf6b71c76b25fbu},  /* 5^64 */
    {0xf316271c7fc3908au, 0x8bef464e3945ef7au},  /* 5^65 */
    {0x97edd871cfda3a56u, 0x97758bf0e3cbb5acu},  /* 5^66 */
    {0xbde94e8e43d0c8ecu, 0x3d52eeed1cbea317u},  /* 5^67 */
    {0xed63a231d4c4fb27u, 0x4ca7aaa863ee4bddu},  /* 5^68 */
    {0x945e455f24fb1cf8u, 0x8fe8caa93e74ef6au},  /* 5^69 */
    {0xb975d6b6ee39e436u, 0xb3e2fd538e122b44u},  /* 5^70 */
    {0xe7d34c64a9c85d44u, 0x60dbbca87196b616u},  /* 5^71 */
    {0x90e40fbeea1d3a4au, 0xbc8955e946fe31cdu},  /* 5^72 */
    {0xb51d13aea4a488ddu, 0x6babab6398bdbe41u},  /* 5^73 */
    {0xe264589a4dcdab14u, 0xc696963c7eed2dd1u},  /* 5^74 */
    {0x8d7eb76070a08aecu, 0xfc1e1de5cf543ca2u},  /* 5^75 */
    {0xb0de65388cc8ada8u, 0x3b25a55f43294bcbu},  /* 5^76 */
    {0xdd15fe86affad912u, 0x49ef0eb713f39ebeu},  /* 5^77 */
    {0x8a2dbf142dfcc7abu, 0x6e3569326c784337u},  /* 5^78 */
    {0xacb92ed9397bf996u, 0x49c2c37f07965404u},  /* 5^79 */
    {0xd7e77a8f87daf7fbu, 0xdc33745ec97be906u},  /* 5^80 */
    {0x86f0ac99b4e8dafdu, 0x69a028bb3ded71a3u},  /* 5^81 */
    {0xa8acd7c0222311bcu, 0xc40832ea0d68ce0cu},  /* 5^82 */
    {0xd2d80db02aabd62bu, 0xf50a3fa490c30190u},  /* 5^83 */
    {0x83c7088e1aab65dbu, 0x792667c6da79e0fau},  /* 5^84 */
    {0xa4b8cab1a1563f52u, 0x577001b891185938u},  /* 5^85 */
    {0xcde6fd5e09abcf26u, 0xed4c0226b55e6f86u},  /* 5^86 */
    {0x80b05e5ac60b6178u, 0x544f8158315b05b4u},  /* 5^87 */
    {0xa0dc75f1778e39d6u, 0x696361ae3db1c721u},  /* 5^88 */
    {0xc913936dd571c84cu, 0x03bc3a19cd1e38e9u},  /* 5^89 */
    {0xfb5878494ace3a5fu, 0x04ab48a04065c723u},  /* 5^90 */
    {0x9d174b2dcec0e47bu, 0x62eb0d64283f9c76u},  /* 5^91 */
    {0xc45d1df942711d9au, 0x3ba5d0bd324f8394u},  /* 5^92 */
    {0xf5746577930d6500u, 0xca8f44ec7ee36479u},  /* 5^93 */
    {0x9968bf6abbe85f20u, 0x7e998b13cf4e1ecbu},  /* 5^94 */
    {0xbfc2ef456ae276e8u, 0x9e3fedd8c321a67eu},  /* 5^95 */
    {0xefb3ab16c59b14a2u, 0xc5cfe94ef3ea101eu},  /* 5^96 */
    {0x95d04aee3b80ece5u, 0xbba1f1d158724a12u},  /* 5^97 */
    {0xbb445da9ca61281fu, 0x2a8a6e45ae8edc97u},  /* 5^98 */
    {0xea1575143cf97226u, 0xf52d09d71a3293bdu},  /* 5^99 */
    {0x924d692ca61be758u, 0x593c2626705f9c56u},  /* 5^100 */
};

/* Eisel-Lemire: w * 10^q correctly rounded, when the 128-bit product decides it; 0 if undecided. */
static int eisel_lemire(uint64_t w, int q, double *out) {
    if (w == 0) {
        *out = 0.0;
        return 1;
    }
    if (q < POW5_MIN_Q || q > POW5_MAX_Q) return 0;
    int lz = __builtin_clzll(w);
    w <<= lz;
    const uint64_t *t = POW5_128[q - POW5_MIN_Q];
    unsigned __int128 first = (unsigned __int128)w * t[0];
    uint64_t hi = (uint64_t)(first >> 64), lo = (uint64_t)first;
    if ((hi & 0x1FF) == 0x1FF) {
        unsigned __int128 second = (unsigned __int128)w * t[1];
        uint64_t shi = (uint64_t)(second >> 64);
        lo += shi;
        if (shi > lo) hi++;
    }
    if (lo == UINT64_MAX) return 0;  /* the 128-bit approximation may be one short: fall back */
    uint64_t upper = hi >> 63;
    uint64_t mant = hi >> (upper + 9);
    int64_t power2 = (((152170 + 65536) * (int64_t)q) >> 16) + 63 + (int64_t)upper - lz + 1023;
    if (power2 <= 0) return 0;  /* subnormal: fall back */
    if (lo <= 1 && q >= -4 && q <= 23 && (mant & 3) == 1) {
        if ((mant << (upper + 9)) == hi) mant &= ~(uint64_t)1;  /* exact tie: round to even */
    }
    mant += mant & 1;
    mant >>= 1;
    if (mant >= ((uint64_t)2 << 52)) {
        mant = (uint64_t)1 << 52;
        power2++;
    }
    mant &= ~((uint64_t)1 << 52);
    if (power2 >= 0x7FF) return 0;
    uint64_t bits = mant | ((uint64_t)power2 << 52);
    memcpy(out, &bits, 8);
    return 1;
}

static int slow_float(const unsigned char *start, size_t len, double *out) {
    char local[128];
    char *buf = local;
    if (len >= sizeof local) {
        buf = PyMem_Malloc(len + 1);
        if (buf == NULL) {
            PyErr_NoMemory();
            return FAIL;
        }
    }
    memcpy(buf, start, len);
    buf[len] = 0;
    char *endp = NULL;
    double v = PyOS_string_to_double(buf, &endp, NULL);
    int rc = OK;
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        rc = REFUSE;
    } else if (endp != buf + len || !isfinite(v)) {
        rc = REFUSE;
    }
    if (buf != local) PyMem_Free(buf);
    *out = v;
    return rc;
}



/* 8 ASCII digits at once (little-endian word), as in fast_float. */
static inline int eight_digits(uint64_t w) {
    return ((w & 0xF0F0F0F0F0F0F0F0ull) | (((w + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4))
           == 0x3333333333333333ull;
}

static inline uint32_t parse_eight(uint64_t w) {
    w -= 0x3030303030303030ull;
    w = (w * 10) + (w >> 8);
    w = (((w & 0x000000FF000000FFull) * (100 + (1000000ull << 32)))
         + (((w >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >> 32;
    return (uint32_t)w;
}

/* 10^0..10^22: the powers of ten a double holds exactly (Clinger's fast path). */
static const double P10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                               1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The digits at p appended to *m (*m = *m * 10^k + the k digits; wraps beyond 19 digits, which the
 * caller counts); returns the position after them. nd: significant digits before p. Words of 8
 * digits while they keep m within 19 digits (model outputs usually have 16-17: two words, and no
 * third attempt that would fail), then one by one. */
static inline const unsigned char *read_digits(const unsigned char *p, const unsigned char *end,
                                               size_t nd, uint64_t *mp) {
    uint64_t m = *mp;
    const unsigned char *from = p;
    while (end - p >= 8 && nd + (size_t)(p - from) <= 11) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (!eight_digits(w)) break;
        m = m * 100000000u + parse_eight(w);
        p += 8;
    }
    while (p < end && is_digit(*p)) m = m * 10 + (uint64_t)(*p++ - '0');
    *mp = m;
    return p;
}

/* -v when neg, by the sign bit (signs are data: a branch would mispredict) */
static inline double with_sign(double v, int neg) {
    uint64_t b;
    memcpy(&b, &v, 8);
    b ^= (uint64_t)neg << 63;
    memcpy(&v, &b, 8);
    return v;
}

/* *pp is at the number's first byte ('-' or a digit). One pass: the significant digits go into m
 * (m wraps beyond 19 of them, and then Python's own conversion decides), the value is m * 10^q. */
static int parse_number(D *d, const unsigned char **pp, Num *num) {
    const unsigned char *p = *pp, *end = d->end, *start = p;
    int neg = *p == '-';
    p += neg;
    uint64_t m = 0;
    size_t nd = 0, int_len;  /* nd: significant digits so far (leading zeros of 0.000ddd excluded) */
    if (p >= end || !is_digit(*p)) return REFUSE;
    /* one path for "0" and "123" (which of them comes is data, a branch would mispredict) */
    const unsigned char *istart = p;
    p = read_digits(p, end, 0, &m);
    int_len = (size_t)(p - istart);
    if (__builtin_expect(*istart == '0' && int_len > 1, 0)) return REFUSE;  /* 01 */
    nd = *istart != '0' ? int_len : 0;  /* the 0 of 0.5 is not a significant digit */
    int64_t q = 0;
    int is_int = 1;
    if (p < end && *p == '.') {
        p++;
        const unsigned char *fstart = p;
        if (p >= end || !is_digit(*p)) return REFUSE;
        if (nd == 0)
            while (p < end && *p == '0') p++;
        const unsigned char *sig = p;
        p = read_digits(p, end, nd, &m);
        nd += (size_t)(p - sig);
        q = -(int64_t)(p - fstart);
        is_int = 0;
    }
    if (p < end && (*p | 0x20) == 'e') {
        p++;
        int eneg = 0;
        if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= end || !is_digit(*p)) return REFUSE;
        int64_t e = 0;
        while (p < end && is_digit(*p)) {
            if (e < 1000000) e = e * 10 + (*p - '0');  /* beyond: inf or 0 either way (slow path) */
            p++;
        }
        q += eneg ? -e : e;
        is_int = 0;
    }
    *pp = p;
    num->is_int = is_int;
    if (is_int) {  /* exactly an int64, or refused; with at most 19 digits m holds them all */
        if (int_len > 19 || m > (uint64_t)INT64_MAX + (uint64_t)neg) return REFUSE;
        num->i = neg ? (int64_t)(0 - m) : (int64_t)m;
        num->d = (double)num->i;  /* round-half-even, as Python's float(int) */
        return OK;
    }
    if (__builtin_expect(nd <= 19, 1)) {  /* m holds every significant digit */
        double v;
#if FLT_EVAL_METHOD == 0
        /* Clinger: m < 10^15 < 2^53 and 10^|q| are exact doubles, so one IEEE operation rounds
         * correctly (nd rather than m decides: the test predicts well on 17-digit data) */
        if (nd <= 15 && q >= -22 && q <= 22) {
            v = (double)m;
            v = q < 0 ? v / P10[-q] : v * P10[q];
            num->d = with_sign(v, neg);
            return OK;
        }
#endif
        if (q >= POW5_MIN_Q && q <= POW5_MAX_Q && eisel_lemire(m, (int)q, &v)) {
            num->d = with_sign(v, neg);
            return OK;
        }
    }
    return slow_float(start, (size_t)(p - start), &num->d);
}

/* Skip (and validate) any JSON value; the stricter rules hold here too: numbers within int64/finite,
 * no lone surrogates, no duplicate keys inside objects is NOT checked (they are ignored either way). */
static int skip_value(D *d, const unsigned char **pp, int depth) {
    const unsigned char *p = ws(*pp, d->end), *end = d->end;
    if (p >= end) return REFUSE;
    unsigned char c = *p;
    if (c == '"') {
        Str s;
        p++;
        TRY(parse_string(d, &p, &s));
    } else if (c == '{' || c == '[') {
        if (depth >= MAX_DEPTH) return REFUSE;
        unsigned char close = c == '{' ? '}' : ']';
        p = ws(p + 1, end);
        if (p < end && *p == close) {
            p++;
        } else {
            for (;;) {
                if (c == '{') {
                    if (p >= end || *p != '"') return REFUSE;
                    Str s;
                    p++;
                    TRY(parse_string(d, &p, &s));
                    p = ws(p, end);
                    if (p >= end || *p != ':') return REFUSE;
                    p++;
                }
                TRY(skip_value(d, &p, depth + 1));
                p = ws(p, end);
                if (p >= end) return REFUSE;
                if (*p == ',') {
                    p = ws(p + 1, end);
                    continue;
                }
                if (*p != close) return REFUSE;
                p++;
                break;
            }
        }
    } else if (c == '-' || is_digit(c)) {
        Num n;
        TRY(parse_number(d, &p, &n));
    } else if (c == 't' && end - p >= 4 && memcmp(p, "true", 4) == 0) {
        p += 4;
    } else if (c == 'f' && end - p >= 5 && memcmp(p, "false", 5) == 0) {
        p += 5;
    } else if (c == 'n' && end - p >= 4 && memcmp(p, "null", 4) == 0) {
        p += 4;
    } else {
        return REFUSE;
    }
    *pp = p;
    return OK;
}

static inline int is_null(D *d, const unsigned char **pp) {
    const unsigned char *p = *pp;
    if (d->end - p >= 4 && memcmp(p, "null", 4) == 0) {
        *pp = p + 4;
        return 1;
    }
    return 0;
}

/* A finite number (a JSON integer converted to float when within int64). */
static int parse_float_value(D *d, const unsigned char **pp, double *out) {
    const unsigned char *p = *pp;
    if (p >= d->end || !(*p == '-' || is_digit(*p))) return REFUSE;
    Num n;
    TRY(parse_number(d, pp, &n));
    *out = n.d;
    return OK;
}

/* An unknown key (top level or outputs): its value is skipped, the key must not repeat. */
static int unknown_key(D *d, const Str *key, uint32_t stamp) {
    int32_t k = intern(&d->unknown, key);
    if (k < 0) return FAIL;
    Ent *e = &d->unknown.e[k];
    if (e->stamp == stamp) return REFUSE;
    e->stamp = stamp;
    return OK;
}

/* A string value interned into strings (at most SHORT_TEXT code points); *pp is just after the opening
 * quote, *pred the index the previous row had here (updated). */
static int string_value(D *d, const unsigned char **pp, int32_t *pred, int32_t *out) {
    const unsigned char *q = match_entry(&d->strings, *pred, *pp, d->end);
    if (q != NULL) {
        *pp = q;
        *out = *pred;
        return OK;
    }
    Str s;
    TRY(parse_string(d, pp, &s));
    if (s.cps > SHORT_TEXT) return REFUSE;
    int32_t k = intern(&d->strings, &s);
    if (k < 0) return FAIL;
    *out = *pred = k;
    return OK;
}

/* An object of the map fields; *pp at '{'. */
static int parse_map(D *d, const unsigned char **pp, int kind) {
    const unsigned char *p = *pp, *end = d->end;
    size_t max = MAP_MAX[kind];
    Vec *kv = &d->v[MAP_KEYS[kind]];
    int32_t *pk = d->pred_key[kind], *pv = d->pred_val[kind];
    if (p >= end || *p != '{') return REFUSE;
    uint32_t stamp = ++d->stamp;
    size_t count = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}') {
        *pp = p + 1;
        return OK;
    }
    /* room for the most entries the map may have (a capacity check, not a write): the pushes below
     * need no check of their own */
    if (kind == MAP_INPUTS) {
        TRY(vec_reserve(&d->v[V_IN_KIND], max));
        TRY(vec_reserve(&d->v[V_IN_NUM], max * sizeof(double)));
        TRY(vec_reserve(&d->v[V_IN_CAT], max * sizeof(int32_t)));
    } else if (kind == MAP_PROBS) {
        TRY(vec_reserve(&d->v[V_PROB_VAL], max * sizeof(double)));
    } else {
        TRY(vec_reserve(&d->v[kind == MAP_SEGMENT ? V_SEG_VAL : V_TAG_VAL], max * sizeof(int32_t)));
    }
    TRY(vec_reserve(kv, max * sizeof(int32_t)));
    for (;;) {
        if (p >= end || *p != '"') return REFUSE;
        p++;
        if (count == max) return REFUSE;
        int32_t k;
        const unsigned char *q = match_entry(&d->names, pk[count], p, end);
        if (q != NULL) {
            k = pk[count];
            p = q;
        } else {
            Str key;
            TRY(parse_string(d, &p, &key));
            if ((k = intern(&d->names, &key)) < 0) return FAIL;
            pk[count] = k;
        }
        Ent *e = &d->names.e[k];
        if (!(e->flags & (kind == MAP_PROBS ? SHORT : NAME_OK))) return REFUSE;
        if (e->stamp == stamp) return REFUSE;  /* duplicate key */
        e->stamp = stamp;
        VEC_PUT(kv, int32_t, k);
        p = ws(p, end);
        if (p >= end || *p != ':') return REFUSE;
        p = ws(p + 1, end);
        if (p >= end) return REFUSE;
        unsigned char c = *p;
        if (kind == MAP_INPUTS) {
            int8_t vk;
            double x = NAN;
            int32_t cat = -1;
            if (c == '"') {
                p++;
                TRY(string_value(d, &p, &pv[count], &cat));
                vk = 1;
            } else if (c == '-' || is_digit(c)) {
                Num n;
                TRY(parse_number(d, &p, &n));
                x = n.d;
                vk = 0;
            } else if (c == 't' && end - p >= 4 && memcmp(p, "true", 4) == 0) {
                p += 4;
                x = 1.0;
                vk = 0;
            } else if (c == 'f' && end - p >= 5 && memcmp(p, "false", 5) == 0) {
                p += 5;
                x = 0.0;
                vk = 0;
            } else if (is_null(d, &p)) {
                vk = 2;
            } else {
                return REFUSE;
            }
            VEC_PUT(&d->v[V_IN_KIND], int8_t, vk);
            VEC_PUT(&d->v[V_IN_NUM], double, x);
            VEC_PUT(&d->v[V_IN_CAT], int32_t, cat);
        } else if (kind == MAP_PROBS) {
            double x;
            TRY(parse_float_value(d, &p, &x));
            if (!(x >= 0.0 && x <= 1.0)) return REFUSE;
            VEC_PUT(&d->v[V_PROB_VAL], double, x);
        } else {
            if (c != '"') return REFUSE;
            p++;
            int32_t v;
            TRY(string_value(d, &p, &pv[count], &v));
            VEC_PUT(&d->v[kind == MAP_SEGMENT ? V_SEG_VAL : V_TAG_VAL], int32_t, v);
        }
        count++;
        p = ws(p, end);
        if (p >= end) return REFUSE;
        if (*p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (*p != '}') return REFUSE;
        *pp = p + 1;
        return OK;
    }
}

/* What one row decodes to before it is known to be ok. */
typedef struct {
    PyObject *event_id, *prediction_id, *model, *model_version, *error;  /* owned, NULL = None */
    int64_t ts;
    double latency, score, value;
    int32_t label;
    int has_outputs;
} Row;

static int key_is(const Str *k, const char *lit, size_t n) {
    return k->len == n && memcmp(k->p, lit, n) == 0;
}

/* A known key as it appears in the message: its bytes and the closing quote (len counts both),
 * padded to 16 readable bytes for word-wise compares. */
typedef struct {
    char pat[16];
    unsigned len;
} KeyLit;

/* outputs' keys, index i is bit 1 << i of parse_outputs */
static const KeyLit OUT_KEYS[] = {{"label\"", 6}, {"score\"", 6}, {"probabilities\"", 14}, {"value\"", 6}};

/* When the previous row had the known key lits[pred[slot]] at this position and the message at p
 * (just after the key's opening quote) holds it again, its index, with *pp just after the closing
 * quote: the key is recognised without decoding it. -1 otherwise. */
static inline int match_key(const KeyLit *lits, const uint8_t *pred, unsigned slot, const unsigned char **pp,
                            const unsigned char *end) {
    if (slot >= KEY_SLOTS || pred[slot] == KEY_NONE) return -1;
    const KeyLit *k = &lits[pred[slot]];
    if (!same_bytes((const char *)*pp, k->pat, k->len, (const char *)end)) return -1;
    *pp += k->len;
    return pred[slot];
}

/* outputs: *pp at '{'. */
static int parse_outputs(D *d, const unsigned char **pp, Row *r) {
    const unsigned char *p = *pp, *end = d->end;
    if (p >= end || *p != '{') return REFUSE;
    uint32_t stamp = ++d->stamp;
    unsigned seen = 0;
    int any = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return REFUSE;  /* needs one of label, score, probabilities, value */
    for (unsigned slot = 0;; slot++) {
        if (p >= end || *p != '"') return REFUSE;
        p++;
        Str key = {0};
        unsigned bit;
        int known = match_key(OUT_KEYS, d->pred_out, slot, &p, end);
        if (known >= 0) {
            bit = 1u << known;
        } else {
            TRY(parse_string(d, &p, &key));
            if (key_is(&key, "label", 5)) bit = 1;
            else if (key_is(&key, "score", 5)) bit = 2;
            else if (key_is(&key, "probabilities", 13)) bit = 4;
            else if (key_is(&key, "value", 5)) bit = 8;
            else bit = 0;
            if (slot < KEY_SLOTS) d->pred_out[slot] = bit ? (uint8_t)__builtin_ctz(bit) : KEY_NONE;
        }
        p = ws(p, end);
        if (p >= end || *p != ':') return REFUSE;
        p = ws(p + 1, end);
        if (p >= end) return REFUSE;
        if (bit) {
            if (seen & bit) return REFUSE;
            seen |= bit;
            if (!is_null(d, &p)) {
                any = 1;
                if (bit == 1) {
                    if (*p != '"') return REFUSE;
                    p++;
                    TRY(string_value(d, &p, &d->pred_label, &r->label));
                } else if (bit == 2) {
                    TRY(parse_float_value(d, &p, &r->score));
                } else if (bit == 8) {
                    TRY(parse_float_value(d, &p, &r->value));
                } else {
                    TRY(parse_map(d, &p, MAP_PROBS));
                }
            }
        } else {
            TRY(unknown_key(d, &key, stamp));
            TRY(skip_value(d, &p, 1));
        }
        p = ws(p, end);
        if (p >= end) return REFUSE;
        if (*p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (*p != '}') return REFUSE;
        p++;
        break;
    }
    if (!any) return REFUSE;
    r->has_outputs = 1;
    *pp = p;
    return OK;
}

enum {
    F_SCHEMA = 1 << 0, F_EVENT_ID = 1 << 1, F_PREDICTION_ID = 1 << 2, F_TS = 1 << 3, F_MODEL = 1 << 4,
    F_VERSION = 1 << 5, F_LATENCY = 1 << 6, F_ERROR = 1 << 7, F_INPUTS = 1 << 8, F_OUTPUTS = 1 << 9,
    F_SEGMENT = 1 << 10, F_TAGS = 1 << 11, F_EMBEDDING = 1 << 12, F_LLM = 1 << 13, F_LINEAGE = 1 << 14,
};
#define F_REQUIRED (F_EVENT_ID | F_PREDICTION_ID | F_TS | F_MODEL | F_VERSION)

/* the top-level keys, index i is F_* bit 1 << i */
static const KeyLit TOP_KEYS[] = {
    {"schema_version\"", 15}, {"event_id\"", 9}, {"prediction_id\"", 14}, {"ts\"", 3}, {"model\"", 6},
    {"model_version\"", 14}, {"latency_ms\"", 11}, {"error\"", 6}, {"inputs\"", 7}, {"outputs\"", 8},
    {"segment\"", 8}, {"tags\"", 5}, {"embedding\"", 10}, {"llm\"", 4}, {"lineage\"", 8},
};

static unsigned top_field(const Str *k) {
    switch (k->len) {
    case 2: return key_is(k, "ts", 2) ? F_TS : 0;
    case 3: return key_is(k, "llm", 3) ? F_LLM : 0;
    case 4: return key_is(k, "tags", 4) ? F_TAGS : 0;
    case 5: return key_is(k, "model", 5) ? F_MODEL : key_is(k, "error", 5) ? F_ERROR : 0;
    case 6: return key_is(k, "inputs", 6) ? F_INPUTS : 0;
    case 7: return key_is(k, "outputs", 7) ? F_OUTPUTS : key_is(k, "segment", 7) ? F_SEGMENT
                 : key_is(k, "lineage", 7) ? F_LINEAGE : 0;
    case 8: return key_is(k, "event_id", 8) ? F_EVENT_ID : 0;
    case 9: return key_is(k, "embedding", 9) ? F_EMBEDDING : 0;
    case 10: return key_is(k, "latency_ms", 10) ? F_LATENCY : 0;
    case 13: return key_is(k, "prediction_id", 13) ? F_PREDICTION_ID
                  : key_is(k, "model_version", 13) ? F_VERSION : 0;
    case 14: return key_is(k, "schema_version", 14) ? F_SCHEMA : 0;
    default: return 0;
    }
}

/* A string value of cps code points within [lo, hi] (for the ids and the error). */
static int string_obj(D *d, const unsigned char **pp, size_t lo, size_t hi, PyObject **out) {
    const unsigned char *p = *pp;
    if (*p != '"') return REFUSE;
    p++;
    Str s;
    TRY(parse_string(d, &p, &s));
    if (s.cps < lo || s.cps > hi) return REFUSE;
    if ((*out = make_str(&s)) == NULL) return FAIL;
    *pp = p;
    return OK;
}

static int model_name(D *d, const unsigned char **pp, uint32_t flag, int32_t *pred, PyObject **out) {
    const unsigned char *p = *pp;
    if (*p != '"') return REFUSE;
    p++;
    int32_t k;
    const unsigned char *q = match_entry(&d->models, *pred, p, d->end);
    if (q != NULL) {
        k = *pred;
        p = q;
    } else {
        Str s;
        TRY(parse_string(d, &p, &s));
        if (!s.ascii || s.len == 0 || s.len > IW_NAME_MAX) return REFUSE;
        if ((k = intern(&d->models, &s)) < 0) return FAIL;
        *pred = k;
    }
    Ent *e = &d->models.e[k];
    if (!(e->flags & flag)) return REFUSE;
    Py_INCREF(e->obj);
    *out = e->obj;
    *pp = p;
    return OK;
}

static int parse_row(D *d, const unsigned char *p, Row *r) {
    const unsigned char *end = d->end;
    p = ws(p, end);
    if (p >= end || *p != '{') return REFUSE;
    uint32_t stamp = ++d->stamp;
    unsigned seen = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return REFUSE;
    for (unsigned slot = 0;; slot++) {
        if (p >= end || *p != '"') return REFUSE;
        p++;
        Str key = {0};
        unsigned f;
        int known = match_key(TOP_KEYS, d->pred_top, slot, &p, end);  /* the key order rarely changes */
        if (known >= 0) {
            f = 1u << known;
        } else {
            TRY(parse_string(d, &p, &key));
            f = top_field(&key);
            if (slot < KEY_SLOTS) d->pred_top[slot] = f ? (uint8_t)__builtin_ctz(f) : KEY_NONE;
        }
        p = ws(p, end);
        if (p >= end || *p != ':') return REFUSE;
        p = ws(p + 1, end);
        if (p >= end) return REFUSE;
        if (f) {
            if (seen & f) return REFUSE;
            seen |= f;
        }
        switch (f) {
        case F_SCHEMA: {
            if (*p != '"') return REFUSE;
            p++;
            Str s;
            TRY(parse_string(d, &p, &s));
            if (!key_is(&s, "prediction.v1", 13)) return REFUSE;
            break;
        }
        case F_EVENT_ID: TRY(string_obj(d, &p, 1, IW_EVENT_ID_MAX, &r->event_id)); break;
        case F_PREDICTION_ID: TRY(string_obj(d, &p, 1, IW_PREDICTION_ID_MAX, &r->prediction_id)); break;
        case F_TS: {
            if (!(*p == '-' || is_digit(*p))) return REFUSE;
            Num n;
            TRY(parse_number(d, &p, &n));
            if (!n.is_int || n.i < TS_MIN || n.i > TS_MAX) return REFUSE;
            r->ts = n.i;
            break;
        }
        case F_MODEL: TRY(model_name(d, &p, NAME_OK, &d->pred_model, &r->model)); break;
        case F_VERSION: TRY(model_name(d, &p, VERSION_OK, &d->pred_version, &r->model_version)); break;
        case F_LATENCY:
            if (!is_null(d, &p)) {
                double x;
                TRY(parse_float_value(d, &p, &x));
                if (!(x >= 0.0)) return REFUSE;
                r->latency = x;
            }
            break;
        case F_ERROR:
            if (!is_null(d, &p)) TRY(string_obj(d, &p, 0, MAX_ERROR, &r->error));
            break;
        case F_INPUTS: TRY(parse_map(d, &p, MAP_INPUTS)); break;
        case F_SEGMENT: TRY(parse_map(d, &p, MAP_SEGMENT)); break;
        case F_TAGS: TRY(parse_map(d, &p, MAP_TAGS)); break;
        case F_OUTPUTS:
            if (!is_null(d, &p)) TRY(parse_outputs(d, &p, r));
            break;
        case F_EMBEDDING:
        case F_LLM:
        case F_LINEAGE:
            if (!is_null(d, &p)) return REFUSE;  /* blocks the fast path leaves to the exact decoder */
            break;
        default:
            TRY(unknown_key(d, &key, stamp));
            TRY(skip_value(d, &p, 1));
        }
        p = ws(p, end);
        if (p >= end) return REFUSE;
        if (*p == ',') {
            p = ws(p + 1, end);
            continue;
        }
        if (*p != '}') return REFUSE;
        p++;
        break;
    }
    if ((seen & F_REQUIRED) != F_REQUIRED) return REFUSE;
    if (!r->has_outputs && r->error == NULL) return REFUSE;  /* a prediction needs outputs or an error */
    return ws(p, end) == end ? OK : REFUSE;
}

/* ---------------------------------------------------------------------------------------------
 * the batch
 */
static PyObject *new_buffer(size_t nbytes, char **data) {
    PyObject *b = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)nbytes);
    if (b != NULL) *data = PyByteArray_AS_STRING(b);
    return b;
}

/* Decoder state outlives a call (one cached instance): its buffers and tables are reused, so a
 * batch does not pay for fresh memory (page faults) every time. Anything grown beyond KEEP_BYTES by
 * an unusual batch is given back. */
#define KEEP_BYTES (8u << 20)

static void d_free(D *d) {
    PyMem_Free(d->scratch.p);
    intern_free(&d->names);
    intern_free(&d->strings);
    intern_free(&d->models);
    intern_free(&d->unknown);
    for (int i = 0; i < N_VECS; i++) PyMem_Free(d->v[i].p);
    PyMem_Free(d->pred_key[0]);
    memset(d, 0, sizeof *d);
}

static void reset_preds(D *d) {
    for (int k = 0; k < N_MAPS; k++) {
        memset(d->pred_key[k], 0xff, sizeof(int32_t) * MAP_MAX[k]);
        memset(d->pred_val[k], 0xff, sizeof(int32_t) * MAP_MAX[k]);
    }
    d->pred_label = d->pred_model = d->pred_version = -1;
    memset(d->pred_top, KEY_NONE, sizeof d->pred_top);
    memset(d->pred_out, KEY_NONE, sizeof d->pred_out);
}

static int d_setup(D *d) {
    memset(d, 0, sizeof *d);
    if (intern_init(&d->names, 1) != OK || intern_init(&d->strings, 1) != OK
        || intern_init(&d->models, 1) != OK || intern_init(&d->unknown, 0) != OK)
        return FAIL;
    size_t total = 0;
    for (int k = 0; k < N_MAPS; k++) total += 2 * MAP_MAX[k];
    int32_t *pred = PyMem_Malloc(sizeof(int32_t) * total);
    if (pred == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    for (int k = 0; k < N_MAPS; k++) {
        d->pred_key[k] = pred;
        d->pred_val[k] = pred + MAP_MAX[k];
        pred += 2 * MAP_MAX[k];
    }
    reset_preds(d);
    return OK;
}

static void shrink(char **p, size_t *cap) {
    if (*cap > KEEP_BYTES) {
        PyMem_Free(*p);
        *p = NULL;
        *cap = 0;
    }
}

static void intern_clear(Intern *t) {
    intern_truncate(t, 0);
    if ((size_t)t->cap * sizeof(Ent) > KEEP_BYTES || (size_t)(t->mask + 1) * 4 > KEEP_BYTES) {
        int make_obj = t->make_obj;
        intern_free(t);
        if (intern_init(t, make_obj) != OK) PyErr_Clear();  /* b stays NULL: the cache is not reused */
        return;
    }
    memset(t->b, 0xff, sizeof(int32_t) * ((size_t)t->mask + 1));
    shrink(&t->a, &t->acap);
}

/* Empty for the next batch (the objects not handed out are released). */
static void d_reset(D *d) {
    intern_clear(&d->names);
    intern_clear(&d->strings);
    intern_clear(&d->models);
    intern_clear(&d->unknown);
    for (int i = 0; i < N_VECS; i++) {
        d->v[i].len = 0;
        shrink(&d->v[i].p, &d->v[i].cap);
    }
    d->scratch.len = 0;
    shrink(&d->scratch.p, &d->scratch.cap);
    d->stamp = 0;
    reset_preds(d);
}

static D *cache = NULL;
static int cache_busy = 0;

static D *d_acquire(void) {
    if (cache != NULL && !cache_busy && cache->names.b && cache->strings.b && cache->models.b
        && cache->unknown.b) {
        cache_busy = 1;
        return cache;
    }
    D *d = PyMem_Malloc(sizeof(D));
    if (d == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    if (d_setup(d) != OK) {
        d_free(d);
        PyMem_Free(d);
        return NULL;
    }
    return d;
}

static void d_release(D *d) {
    if (d == cache) {
        d_reset(d);
        cache_busy = 0;
    } else if (cache == NULL) {
        d_reset(d);
        cache = d;
    } else {
        d_free(d);
        PyMem_Free(d);
    }
}

static void row_clear(Row *r) {
    Py_CLEAR(r->event_id);
    Py_CLEAR(r->prediction_id);
    Py_CLEAR(r->model);
    Py_CLEAR(r->model_version);
    Py_CLEAR(r->error);
}

static PyObject *list_of(Intern *t) {
    PyObject *l = PyList_New(t->n);
    if (l == NULL) return NULL;
    for (int32_t i = 0; i < t->n; i++) {
        PyList_SET_ITEM(l, i, t->e[i].obj);  /* the table's reference moves to the list */
        t->e[i].obj = NULL;
    }
    return l;
}

static inline PyObject *or_none(PyObject *o) {
    if (o == NULL) {
        Py_INCREF(Py_None);
        return Py_None;
    }
    return o;
}

enum {
    COL_N, COL_OK, COL_EVENT_ID, COL_PREDICTION_ID, COL_MODEL, COL_VERSION, COL_TS, COL_LATENCY, COL_ERROR,
    COL_IN_OFF, COL_IN_KEY, COL_IN_KIND, COL_IN_NUM, COL_IN_CAT,
    COL_HAS_OUT, COL_LABEL, COL_SCORE, COL_VALUE, COL_PROB_OFF, COL_PROB_KEY, COL_PROB_VAL,
    COL_SEG_OFF, COL_SEG_KEY, COL_SEG_VAL, COL_TAG_OFF, COL_TAG_KEY, COL_TAG_VAL, COL_NAMES, COL_STRINGS, COL_COUNT
};

/* vector of each flat column, in the order of the result tuple */
static const int VEC_SLOT[N_VECS] = {COL_IN_KEY, COL_IN_KIND, COL_IN_NUM, COL_IN_CAT, COL_PROB_KEY, COL_PROB_VAL,
                                     COL_SEG_KEY, COL_SEG_VAL, COL_TAG_KEY, COL_TAG_VAL};

PyDoc_STRVAR(decode_doc,
"decode_predictions(raws, /) -> tuple\n\n"
"Decode a sequence of prediction.v1 message values (bytes-like or None) into the fields of\n"
"inferwatch.native.prediction_columns.PredictionColumns, in field order: numeric columns as bytearrays\n"
"(native byte order), the id/name columns as lists of str or None.");

static PyObject *decode_predictions(PyObject *self, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "raws must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    PyObject *res = PyTuple_New(COL_COUNT);
    if (res == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    D *d = d_acquire();
    if (d == NULL) {
        Py_DECREF(res);
        Py_DECREF(seq);
        return NULL;
    }
    char *ok_b, *ts_b, *lat_b, *hout_b, *label_b, *score_b, *value_b, *off_b[4];
    PyObject *o;
#define NEWBUF(slot, size, ptr) \
    if ((o = new_buffer((size), &(ptr))) == NULL) goto fail; \
    PyTuple_SET_ITEM(res, slot, o);
#define NEWLIST(slot) \
    if ((o = PyList_New(n)) == NULL) goto fail; \
    PyTuple_SET_ITEM(res, slot, o);
    size_t un = (size_t)n;
    NEWBUF(COL_OK, un, ok_b);
    NEWBUF(COL_TS, un * 8, ts_b);
    NEWBUF(COL_LATENCY, un * 8, lat_b);
    NEWBUF(COL_HAS_OUT, un, hout_b);
    NEWBUF(COL_LABEL, un * 4, label_b);
    NEWBUF(COL_SCORE, un * 8, score_b);
    NEWBUF(COL_VALUE, un * 8, value_b);
    NEWBUF(COL_IN_OFF, (un + 1) * 8, off_b[0]);
    NEWBUF(COL_PROB_OFF, (un + 1) * 8, off_b[1]);
    NEWBUF(COL_SEG_OFF, (un + 1) * 8, off_b[2]);
    NEWBUF(COL_TAG_OFF, (un + 1) * 8, off_b[3]);
    NEWLIST(COL_EVENT_ID);
    NEWLIST(COL_PREDICTION_ID);
    NEWLIST(COL_MODEL);
    NEWLIST(COL_VERSION);
    NEWLIST(COL_ERROR);
    PyTuple_SET_ITEM(res, COL_N, PyLong_FromSsize_t(n));
    if (PyTuple_GET_ITEM(res, COL_N) == NULL) goto fail;
    memset(off_b[0], 0, 8);
    memset(off_b[1], 0, 8);
    memset(off_b[2], 0, 8);
    memset(off_b[3], 0, 8);
    PyObject *l_eid = PyTuple_GET_ITEM(res, COL_EVENT_ID), *l_pid = PyTuple_GET_ITEM(res, COL_PREDICTION_ID),
             *l_model = PyTuple_GET_ITEM(res, COL_MODEL), *l_ver = PyTuple_GET_ITEM(res, COL_VERSION),
             *l_err = PyTuple_GET_ITEM(res, COL_ERROR);
    const double nan = NAN;
    /* The allocations above may have run a garbage collection, and with it arbitrary finalizers:
     * take the items only now, and insist the sequence kept its length. */
    if (PySequence_Fast_GET_SIZE(seq) != n) {
        PyErr_SetString(PyExc_RuntimeError, "raws changed size during decode_predictions");
        goto fail;
    }
    items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        Py_buffer view;
        int have_view = 0;
        const unsigned char *p = NULL;
        size_t len = 0;
        if (PyBytes_CheckExact(item)) {
            p = (const unsigned char *)PyBytes_AS_STRING(item);
            len = (size_t)PyBytes_GET_SIZE(item);
        } else if (item != Py_None && PyObject_CheckBuffer(item)) {
            if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) goto fail;
            have_view = 1;
            p = view.buf;
            len = (size_t)view.len;
        }
        size_t saved[N_VECS];
        for (int k = 0; k < N_VECS; k++) saved[k] = d->v[k].len;
        int32_t saved_names = d->names.n, saved_strings = d->strings.n;
        Row r = {NULL, NULL, NULL, NULL, NULL, 0, NAN, NAN, NAN, -1, 0};
        int rc = REFUSE;
        if (p != NULL) {
            d->end = p + len;
            rc = parse_row(d, p, &r);
        }
        if (have_view) PyBuffer_Release(&view);
        if (rc == FAIL) {
            row_clear(&r);
            goto fail;
        }
        if (rc == REFUSE) {
            row_clear(&r);
            for (int k = 0; k < N_VECS; k++) d->v[k].len = saved[k];
            intern_truncate(&d->names, saved_names);
            intern_truncate(&d->strings, saved_strings);
            r.ts = 0;
            r.latency = r.score = r.value = nan;
            r.label = -1;
            r.has_outputs = 0;
        }
        ok_b[i] = rc == OK;
        memcpy(ts_b + 8 * i, &r.ts, 8);
        memcpy(lat_b + 8 * i, &r.latency, 8);
        hout_b[i] = (char)r.has_outputs;
        memcpy(label_b + 4 * i, &r.label, 4);
        memcpy(score_b + 8 * i, &r.score, 8);
        memcpy(value_b + 8 * i, &r.value, 8);
        int64_t offs[4] = {(int64_t)(d->v[V_IN_KEY].len / 4), (int64_t)(d->v[V_PROB_KEY].len / 4),
                           (int64_t)(d->v[V_SEG_KEY].len / 4), (int64_t)(d->v[V_TAG_KEY].len / 4)};
        for (int k = 0; k < 4; k++) memcpy(off_b[k] + 8 * (i + 1), &offs[k], 8);
        PyList_SET_ITEM(l_eid, i, or_none(r.event_id));
        PyList_SET_ITEM(l_pid, i, or_none(r.prediction_id));
        PyList_SET_ITEM(l_model, i, or_none(r.model));
        PyList_SET_ITEM(l_ver, i, or_none(r.model_version));
        PyList_SET_ITEM(l_err, i, or_none(r.error));
    }
    for (int k = 0; k < N_VECS; k++) {
        Vec *v = &d->v[k];
        if ((o = PyByteArray_FromStringAndSize(v->p ? v->p : "", (Py_ssize_t)v->len)) == NULL) goto fail;
        PyTuple_SET_ITEM(res, VEC_SLOT[k], o);
    }
    if ((o = list_of(&d->names)) == NULL) goto fail;
    PyTuple_SET_ITEM(res, COL_NAMES, o);
    if ((o = list_of(&d->strings)) == NULL) goto fail;
    PyTuple_SET_ITEM(res, COL_STRINGS, o);
    d_release(d);
    Py_DECREF(seq);
    return res;
fail:
    d_release(d);
    Py_XDECREF(res);
    Py_DECREF(seq);
    return NULL;
#undef NEWBUF
#undef NEWLIST
}

PyDoc_STRVAR(parse_number_doc,
"parse_number(token, /) -> int | float | None\n\n"
"The number a whole JSON number token decodes to (int within int64, else a finite float), or None\n"
"when the fast path refuses it (for the parity tests of the number conversion).");

static PyObject *py_parse_number(PyObject *self, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "token must be bytes");
        return NULL;
    }
    D d;
    memset(&d, 0, sizeof d);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(arg);
    d.end = p + PyBytes_GET_SIZE(arg);
    Num num;
    int rc = REFUSE;
    if (p < d.end && (*p == '-' || is_digit(*p))) rc = parse_number(&d, &p, &num);
    if (rc == FAIL) return NULL;
    if (rc == REFUSE || p != d.end) Py_RETURN_NONE;
    return num.is_int ? PyLong_FromLongLong(num.i) : PyFloat_FromDouble(num.d);
}

static PyMethodDef methods[] = {
    {"decode_predictions", decode_predictions, METH_O, decode_doc},
    {"parse_number", py_parse_number, METH_O, parse_number_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "inferwatch.native._decode",
    "prediction.v1 messages into flat columns (see inferwatch.native.prediction_columns).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__decode(void) { return PyModule_Create(&module); }
