/*
 * inferwatch.native._encode: the SDK's common prediction event, checked and serialised to
 * prediction.v1 JSON bytes in one pass straight from the arguments of
 * InferenceLogger.prediction() (no event dict, no orjson call).
 *
 * Wire format: UTF-8 JSON, byte-identical to orjson.dumps() of the event dict the SDK's
 * checked path builds:
 *   {"schema_version":"prediction.v1","event_id":E,"prediction_id":E,"ts":MS,"model":M,
 *    "model_version":V,"inputs":{...},"outputs":{...}[,"latency_ms":L][,"segment":{...}]}
 * Keys in the caller's dict order; strings escaped like orjson (", \ and control characters;
 * everything else as UTF-8); ints in [-2**63, 2**64); floats in their shortest round-trip form
 * laid out like orjson (plain for 1e-5 <= |x| < 1e16, "1.5e+16"/"1e-7" otherwise).
 *
 * It is an accelerator only: Encoder.prediction() returns None for anything it does not
 * recognise at once (a value of an unusual type, a name never checked, a non-finite float, a
 * lone surrogate, ...), and the caller then takes the fully checked path, which converts what
 * can be converted and names the offending field. The pure-Python twin is
 * inferwatch.sdk.encode.PyEncoder (same acceptance, same bytes; a parity test compares them).
 *
 * Shortest floats: for 1e-5 <= |x| < 2**53 (the values features and scores nearly always take)
 * the digits are found with exact 128-bit integer arithmetic: the first number f of fractional
 * digits for which an integer c with c / 10**f inside x's rounding interval exists, the closest
 * such c (ties to even) -- the same digits as repr() and orjson. Other magnitudes go through
 * CPython's own repr (PyOS_double_to_string 'r'), re-laid out like orjson.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define SHORT 256
#define MAX_INPUTS 2000
#define MAX_SEGMENT 32
#define MAX_NAME 128

/* ------------------------------------------------------------------------------------------ */
/* growable output buffer                                                                      */

typedef struct {
    char *p;      /* write position */
    char *end;    /* end of the allocation */
    char *start;
    char *heap;   /* non-NULL once grown beyond the caller's stack buffer */
} Buf;

static int buf_grow(Buf *b, size_t need) {
    size_t used = (size_t)(b->p - b->start);
    size_t cap = (size_t)(b->end - b->start);
    size_t want = cap * 2;
    if (want < used + need) want = used + need + 1024;
    char *n = PyMem_Malloc(want);
    if (n == NULL) return -1;
    memcpy(n, b->start, used);
    PyMem_Free(b->heap);
    b->heap = n;
    b->start = n;
    b->p = n + used;
    b->end = n + want;
    return 0;
}

/* make room for `need` more bytes */
#define RESERVE(b, need) \
    do { if ((size_t)((b)->end - (b)->p) < (size_t)(need) && buf_grow((b), (need)) < 0) return -1; } while (0)

/* ------------------------------------------------------------------------------------------ */
/* strings and names                                                                          */

/* [A-Za-z0-9_.:/@+-]: what check_name() accepts (and what JSON needs no escape for) */
static unsigned char NAME_OK[256];
/* 0: copy as is; 1: escape (", \, and bytes < 0x20) */
static unsigned char NEEDS_ESC[256];
static const char HEX[] = "0123456789abcdef";

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
        NAME_OK[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '_' || c == '.' || c == ':' || c == '/' || c == '@' || c == '+' || c == '-';
        NEEDS_ESC[c] = c < 0x20 || c == '"' || c == '\\';
    }
}

/* A feature/segment name: exact str, 1..128 ASCII chars of the name set. Written quoted with a
 * trailing ':'. Returns 1 when written, 0 when not a plain name (fall back), -1 on memory error. */
static int write_name(Buf *b, PyObject *k) {
    if (!PyUnicode_CheckExact(k) || !PyUnicode_IS_COMPACT_ASCII(k)) return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(k);
    if (n < 1 || n > MAX_NAME) return 0;
    const unsigned char *s = (const unsigned char *)PyUnicode_DATA(k);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!NAME_OK[s[i]]) return 0;
    RESERVE(b, (size_t)n + 3);
    *b->p++ = '"';
    memcpy(b->p, s, (size_t)n);
    b->p += n;
    *b->p++ = '"';
    *b->p++ = ':';
    return 1;
}

/* An exact str of at most SHORT characters, escaped like orjson. 1 written, 0 fall back, -1 error. */
static int write_str(Buf *b, PyObject *v) {
    if (PyUnicode_GET_LENGTH(v) > SHORT) return 0;
    const unsigned char *s;
    Py_ssize_t n;
    if (PyUnicode_IS_COMPACT_ASCII(v)) {
        s = (const unsigned char *)PyUnicode_DATA(v);
        n = PyUnicode_GET_LENGTH(v);
    } else {
        s = (const unsigned char *)PyUnicode_AsUTF8AndSize(v, &n);
        if (s == NULL) {  /* lone surrogates: orjson refuses them too; let the checked path say so */
            PyErr_Clear();
            return 0;
        }
    }
    RESERVE(b, (size_t)n * 6 + 2);
    char *p = b->p;
    *p++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (!NEEDS_ESC[c]) {
            *p++ = (char)c;
            continue;
        }
        *p++ = '\\';
        switch (c) {
            case '"': *p++ = '"'; break;
            case '\\': *p++ = '\\'; break;
            case '\n': *p++ = 'n'; break;
            case '\t': *p++ = 't'; break;
            case '\r': *p++ = 'r'; break;
            case '\b': *p++ = 'b'; break;
            case '\f': *p++ = 'f'; break;
            default:
                *p++ = 'u'; *p++ = '0'; *p++ = '0';
                *p++ = HEX[c >> 4]; *p++ = HEX[c & 15];
        }
    }
    *p++ = '"';
    b->p = p;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* numbers                                                                                     */

/* decimal digits of v, written at p; returns the end */
static char *u64_digits(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = tmp[--n];
    return p;
}

/* v written with exactly `width` digits, zero-padded on the left */
static char *u64_digits_padded(char *p, uint64_t v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

typedef unsigned __int128 u128;

static u128 POW10[23];

/* Lay out a shortest decimal like orjson: `digits` (no leading zeros, at least one digit,
 * trailing zeros allowed only for 0) and the exponent k of the first digit (x = d.ddd * 10**k). */
static char *layout(char *p, const char *digits, int nd, int k) {
    /* strip trailing zeros: the shortest form has none */
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    if (k >= -5 && k < 16) {
        if (k >= 0) {
            int i;
            for (i = 0; i <= k; i++) *p++ = i < nd ? digits[i] : '0';
            *p++ = '.';
            if (nd > k + 1) {
                memcpy(p, digits + k + 1, (size_t)(nd - k - 1));
                p += nd - k - 1;
            } else {
                *p++ = '0';
            }
        } else {
            *p++ = '0';
            *p++ = '.';
            for (int i = 0; i < -k - 1; i++) *p++ = '0';
            memcpy(p, digits, (size_t)nd);
            p += nd;
        }
    } else {
        *p++ = digits[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, (size_t)(nd - 1));
            p += nd - 1;
        }
        *p++ = 'e';
        if (k < 0) {
            *p++ = '-';
            k = -k;
        } else {
            *p++ = '+';
        }
        p = u64_digits(p, (uint64_t)k);
    }
    return p;
}

/* The slow path: CPython's repr digits, re-laid out like orjson. */
static char *double_slow(char *p, double ax) {
    char *r = PyOS_double_to_string(ax, 'r', 0, 0, NULL);
    if (r == NULL) return NULL;
    char digits[40];
    int nd = 0, point = -1, k;
    const char *s = r;
    int leading = 1, lead_zeros_after_point = 0, seen_point = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s == '.') {
            seen_point = 1;
            point = nd;
            continue;
        }
        if (leading && *s == '0') {
            if (seen_point) lead_zeros_after_point++;
            continue;
        }
        leading = 0;
        if (nd < 39) digits[nd++] = *s;
    }
    if (point < 0) point = nd;  /* digits before the point (no leading zeros) */
    int e10 = 0;
    if (*s == 'e') e10 = atoi(s + 1);
    PyMem_Free(r);
    if (nd == 0) {  /* cannot happen for the non-zero values sent here */
        digits[nd++] = '0';
        k = 0;
    } else if (point > 0) {
        k = point - 1 + e10;
    } else {
        k = -lead_zeros_after_point - 1 + e10;
    }
    return layout(p, digits, nd, k);
}

/* A finite double in its shortest round-trip form, laid out like orjson. NULL on memory error. */
static char *write_double(char *p, double x) {
    uint64_t bits;
    memcpy(&bits, &x, 8);
    int ieee_exp = (int)((bits >> 52) & 0x7ff);
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    if (bits >> 63) *p++ = '-';
    if (ieee_exp == 0 && frac == 0) {
        memcpy(p, "0.0", 3);
        return p + 3;
    }
    double ax = fabs(x);
    if (ieee_exp == 0 || ax < 1e-5 || ax >= 9007199254740992.0) return double_slow(p, ax);
    uint64_t m = frac | (UINT64_C(1) << 52);
    int s = 1075 - ieee_exp; /* x = m / 2**s */
    if (s <= 0) {  /* only s == 0 below 2**53: an integer */
        p = u64_digits(p, m);
        memcpy(p, ".0", 2);
        return p + 2;
    }
    if (s <= 52 && (m & ((UINT64_C(1) << s) - 1)) == 0) {  /* integral */
        p = u64_digits(p, m >> s);
        memcpy(p, ".0", 2);
        return p + 2;
    }
    /* Rounding interval of x in units of 2**-(s+2): [lo, hi] around 4m (inclusive iff m even,
     * as a round-half-even parser maps the bounds to x then). At a power of two the gap below
     * is half the gap above. */
    u128 hi = (u128)(4 * m + 2);
    u128 lo = (u128)(frac == 0 && ieee_exp > 1 ? 4 * m - 1 : 4 * m - 2);
    int inclusive = (m & 1) == 0;
    int sh = s + 2;
    for (int f = 0; f <= 21; f++) {
        u128 P = POW10[f];
        u128 mp = (u128)m * P;           /* x * 10**f * 2**s, exact (< 2**127) */
        u128 c = mp >> s;                /* floor(x * 10**f) */
        u128 rem = mp - (c << s);
        u128 lop = lo * P, hip = hi * P;
        u128 c0 = c << sh, c1 = (c + 1) << sh;
        int in0 = inclusive ? (c0 >= lop && c0 <= hip) : (c0 > lop && c0 < hip);
        int in1 = inclusive ? (c1 >= lop && c1 <= hip) : (c1 > lop && c1 < hip);
        if (!in0 && !in1) continue;
        u128 pick;
        if (in0 && in1) {
            u128 half = (u128)1 << (s - 1);
            if (rem < half) pick = c;
            else if (rem > half) pick = c + 1;
            else pick = (c & 1) ? c + 1 : c;
        } else {
            pick = in0 ? c : c + 1;
        }
        uint64_t d = (uint64_t)pick; /* < 10**17: the 17-digit candidate always fits */
        if (f == 0) {
            p = u64_digits(p, d);
            memcpy(p, ".0", 2);
            return p + 2;
        }
        uint64_t ip = d / (uint64_t)P, fp = d % (uint64_t)P;
        p = u64_digits(p, ip);
        *p++ = '.';
        /* f digits, of which the trailing ones are not zero (else f - 1 would have done) */
        return u64_digits_padded(p, fp, f);
    }
    return double_slow(p, ax);  /* needs more than 21 fractional digits: below 1e-4 only */
}

/* 1 written, 0 not a finite float (fall back), -1 error */
static int write_float(Buf *b, double x) {
    if (!isfinite(x)) return 0;
    RESERVE(b, 40);
    char *p = write_double(b->p, x);
    if (p == NULL) return -1;
    b->p = p;
    return 1;
}

/* An exact int in orjson's range [-2**63, 2**64). 1 written, 0 out of range, -1 error. */
static int write_int(Buf *b, PyObject *v) {
    int overflow = 0;
    long long ll = PyLong_AsLongLongAndOverflow(v, &overflow);
    RESERVE(b, 24);
    if (overflow == 0) {
        if (ll == -1 && PyErr_Occurred()) return -1;
        if (ll < 0) {
            *b->p++ = '-';
            b->p = u64_digits(b->p, (uint64_t)0 - (uint64_t)ll);
        } else {
            b->p = u64_digits(b->p, (uint64_t)ll);
        }
        return 1;
    }
    if (overflow < 0) return 0;
    unsigned long long u = PyLong_AsUnsignedLongLong(v);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    b->p = u64_digits(b->p, (uint64_t)u);
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* the event blocks                                                                           */

/* "inputs": dict[name, float|int|bool|str(<=256)|None] */
static int write_inputs(Buf *b, PyObject *d) {
    if (!PyDict_CheckExact(d) || PyDict_GET_SIZE(d) > MAX_INPUTS) return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int first = 1, r;
    RESERVE(b, 1);
    *b->p++ = '{';
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!first) {
            RESERVE(b, 1);
            *b->p++ = ',';
        }
        first = 0;
        if ((r = write_name(b, k)) <= 0) return r;
        PyTypeObject *t = Py_TYPE(v);
        if (t == &PyFloat_Type) {
            r = write_float(b, PyFloat_AS_DOUBLE(v));
        } else if (t == &PyUnicode_Type) {
            r = write_str(b, v);
        } else if (v == Py_None) {
            RESERVE(b, 4);
            memcpy(b->p, "null", 4);
            b->p += 4;
            r = 1;
        } else if (v == Py_True) {
            RESERVE(b, 4);
            memcpy(b->p, "true", 4);
            b->p += 4;
            r = 1;
        } else if (v == Py_False) {
            RESERVE(b, 5);
            memcpy(b->p, "false", 5);
            b->p += 5;
            r = 1;
        } else if (t == &PyLong_Type) {
            r = write_int(b, v);
        } else {
            r = 0;
        }
        if (r <= 0) return r;
    }
    RESERVE(b, 1);
    *b->p++ = '}';
    return 1;
}

static PyObject *S_label, *S_score, *S_value;

/* "outputs": non-empty dict of label (str <= 256) and score/value (finite float) only */
static int write_outputs(Buf *b, PyObject *d) {
    if (!PyDict_CheckExact(d) || PyDict_GET_SIZE(d) == 0) return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int first = 1, r;
    RESERVE(b, 1);
    *b->p++ = '{';
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k)) return 0;
        if (!first) {
            RESERVE(b, 1);
            *b->p++ = ',';
        }
        first = 0;
        /* interned names compare by identity first; equal-but-not-identical keys still match */
        if (k == S_label || PyUnicode_Compare(k, S_label) == 0) {
            if (!PyUnicode_CheckExact(v)) return 0;
            RESERVE(b, 8);
            memcpy(b->p, "\"label\":", 8);
            b->p += 8;
            r = write_str(b, v);
        } else if (k == S_score || k == S_value || PyUnicode_Compare(k, S_score) == 0 ||
                   PyUnicode_Compare(k, S_value) == 0) {
            if (!PyFloat_CheckExact(v)) return 0;
            RESERVE(b, 8);
            if (PyUnicode_Compare(k, S_score) == 0) {
                memcpy(b->p, "\"score\":", 8);
            } else {
                memcpy(b->p, "\"value\":", 8);
            }
            b->p += 8;
            r = write_float(b, PyFloat_AS_DOUBLE(v));
        } else {
            return 0; /* probabilities, unknown keys: the checked path */
        }
        if (r <= 0) return r;
    }
    RESERVE(b, 1);
    *b->p++ = '}';
    return 1;
}

/* "segment": dict of at most 32 name -> str(<=256) */
static int write_segment(Buf *b, PyObject *d) {
    if (PyDict_GET_SIZE(d) > MAX_SEGMENT) return 0;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    int first = 1, r;
    RESERVE(b, 1);
    *b->p++ = '{';
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!first) {
            RESERVE(b, 1);
            *b->p++ = ',';
        }
        first = 0;
        if ((r = write_name(b, k)) <= 0) return r;
        if (!PyUnicode_CheckExact(v)) return 0;
        if ((r = write_str(b, v)) <= 0) return r;
    }
    RESERVE(b, 1);
    *b->p++ = '}';
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Encoder                                                                                    */

typedef struct {
    PyObject_HEAD
    PyObject *ids;       /* inferwatch.sdk.ids.IdGenerator: .prefix (str), .counter (itertools.count) */
    PyObject *mid;       /* bytes: ,"model":"M","model_version":"V","inputs": */
} Encoder;

static PyObject *S_prefix, *S_counter;

static int Encoder_init(Encoder *self, PyObject *args, PyObject *kwds) {
    PyObject *model, *version, *ids;
    static char *kw[] = {"model", "model_version", "ids", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UUO", kw, &model, &version, &ids)) return -1;
    char stack[512];
    Buf b = {stack, stack + sizeof stack, stack, NULL};
    int ok = 1;
    const char *a = ",\"model\":";
    const char *c = ",\"model_version\":";
    const char *e = ",\"inputs\":";
    memcpy(b.p, a, strlen(a));
    b.p += strlen(a);
    /* names are checked by the logger before; a str of any content is still escaped right */
    if (write_str(&b, model) <= 0) ok = 0;
    if (ok && (size_t)(b.end - b.p) > strlen(c)) {
        memcpy(b.p, c, strlen(c));
        b.p += strlen(c);
    } else {
        ok = 0;
    }
    if (ok && write_str(&b, version) <= 0) ok = 0;
    if (ok && (size_t)(b.end - b.p) > strlen(e)) {
        memcpy(b.p, e, strlen(e));
        b.p += strlen(e);
    } else {
        ok = 0;
    }
    if (!ok) {
        PyMem_Free(b.heap);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "model and model_version must be short names");
        return -1;
    }
    PyObject *mid = PyBytes_FromStringAndSize(b.start, b.p - b.start);
    PyMem_Free(b.heap);
    if (mid == NULL) return -1;
    Py_XSETREF(self->mid, mid);
    Py_INCREF(ids);
    Py_XSETREF(self->ids, ids);
    return 0;
}

static void Encoder_dealloc(Encoder *self) {
    Py_XDECREF(self->ids);
    Py_XDECREF(self->mid);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* prediction(inputs, outputs, latency_ms, segment) -> (event_id, payload) | None */
static PyObject *Encoder_prediction(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "prediction(inputs, outputs, latency_ms, segment)");
        return NULL;
    }
    PyObject *inputs = args[0], *outputs = args[1], *latency = args[2], *segment = args[3];
    if (!PyDict_CheckExact(inputs) || !PyDict_CheckExact(outputs)) Py_RETURN_NONE;
    double lat = 0.0;
    if (latency != Py_None) {
        if (!PyFloat_CheckExact(latency)) Py_RETURN_NONE;
        lat = PyFloat_AS_DOUBLE(latency);
        if (!(lat >= 0.0 && lat < 1e300)) Py_RETURN_NONE;  /* NaN fails too */
    }
    int with_segment = 0;
    if (segment != Py_None) {
        if (!PyDict_CheckExact(segment)) Py_RETURN_NONE;  /* "", [] ...: the checked path decides */
        with_segment = PyDict_GET_SIZE(segment) > 0;
    }

    /* the body, from the inputs on */
    char stack[4096];
    Buf b = {stack, stack + sizeof stack, stack, NULL};
    int r = write_inputs(&b, inputs);
    if (r > 0) {
        if ((size_t)(b.end - b.p) < 11 && buf_grow(&b, 11) < 0) r = -1;
        else {
            memcpy(b.p, ",\"outputs\":", 11);
            b.p += 11;
            r = write_outputs(&b, outputs);
        }
    }
    if (r > 0 && latency != Py_None) {
        if ((size_t)(b.end - b.p) < 14 && buf_grow(&b, 14) < 0) r = -1;
        else {
            memcpy(b.p, ",\"latency_ms\":", 14);
            b.p += 14;
            r = write_float(&b, lat);
        }
    }
    if (r > 0 && with_segment) {
        if ((size_t)(b.end - b.p) < 11 && buf_grow(&b, 11) < 0) r = -1;
        else {
            memcpy(b.p, ",\"segment\":", 11);
            b.p += 11;
            r = write_segment(&b, segment);
        }
    }
    if (r > 0 && (size_t)(b.end - b.p) < 1 && buf_grow(&b, 1) < 0) r = -1;
    if (r <= 0) {
        PyMem_Free(b.heap);
        if (r < 0) return NULL;
        Py_RETURN_NONE;
    }
    *b.p++ = '}';

    /* The id: the IdGenerator's prefix and next counter value (shared with the checked path,
     * re-read every call because a forked child gets new ones). */
    PyObject *prefix = PyObject_GetAttr(self->ids, S_prefix);
    PyObject *counter = prefix ? PyObject_GetAttr(self->ids, S_counter) : NULL;
    PyObject *n = counter ? PyIter_Next(counter) : NULL;
    Py_XDECREF(counter);
    if (n == NULL || !PyUnicode_CheckExact(prefix) || !PyUnicode_IS_COMPACT_ASCII(prefix)) {
        Py_XDECREF(prefix);
        Py_XDECREF(n);
        PyMem_Free(b.heap);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "ids: need an ASCII prefix and a counter");
        return NULL;
    }
    unsigned long long seq = PyLong_AsUnsignedLongLong(n);
    Py_DECREF(n);
    if (seq == (unsigned long long)-1 && PyErr_Occurred()) {
        Py_DECREF(prefix);
        PyMem_Free(b.heap);
        return NULL;
    }
    char idbuf[200];
    Py_ssize_t plen = PyUnicode_GET_LENGTH(prefix);
    if (plen > 160) {
        Py_DECREF(prefix);
        PyMem_Free(b.heap);
        PyErr_SetString(PyExc_ValueError, "ids: prefix too long");
        return NULL;
    }
    memcpy(idbuf, PyUnicode_DATA(prefix), (size_t)plen);
    Py_DECREF(prefix);
    char *ie = u64_digits(idbuf + plen, (uint64_t)seq);
    Py_ssize_t idlen = ie - idbuf;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

    /* {"schema_version":"prediction.v1","event_id":"ID","prediction_id":"ID","ts":MS + mid + body */
    static const char H1[] = "{\"schema_version\":\"prediction.v1\",\"event_id\":\"";
    static const char H2[] = "\",\"prediction_id\":\"";
    static const char H3[] = "\",\"ts\":";
    char head[320];
    char *h = head;
    memcpy(h, H1, sizeof H1 - 1); h += sizeof H1 - 1;
    memcpy(h, idbuf, (size_t)idlen); h += idlen;
    memcpy(h, H2, sizeof H2 - 1); h += sizeof H2 - 1;
    memcpy(h, idbuf, (size_t)idlen); h += idlen;
    memcpy(h, H3, sizeof H3 - 1); h += sizeof H3 - 1;
    h = u64_digits(h, (uint64_t)(ms < 0 ? 0 : ms));
    Py_ssize_t hlen = h - head, mlen = PyBytes_GET_SIZE(self->mid), blen = b.p - b.start;

    PyObject *payload = PyBytes_FromStringAndSize(NULL, hlen + mlen + blen);
    PyObject *eid = payload ? PyUnicode_New(idlen, 127) : NULL;
    if (eid == NULL) {
        Py_XDECREF(payload);
        PyMem_Free(b.heap);
        return NULL;
    }
    char *out = PyBytes_AS_STRING(payload);
    memcpy(out, head, (size_t)hlen);
    memcpy(out + hlen, PyBytes_AS_STRING(self->mid), (size_t)mlen);
    memcpy(out + hlen + mlen, b.start, (size_t)blen);
    PyMem_Free(b.heap);
    memcpy(PyUnicode_DATA(eid), idbuf, (size_t)idlen);
    PyObject *res = PyTuple_New(2);
    if (res == NULL) {
        Py_DECREF(payload);
        Py_DECREF(eid);
        return NULL;
    }
    PyTuple_SET_ITEM(res, 0, eid);
    PyTuple_SET_ITEM(res, 1, payload);
    return res;
}

/* format_float(x) -> bytes: one float as the encoder writes it (for the parity tests) */
static PyObject *format_float(PyObject *mod, PyObject *arg) {
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred()) return NULL;
    if (!isfinite(x)) {
        PyErr_SetString(PyExc_ValueError, "not finite");
        return NULL;
    }
    char tmp[64];
    char *p = write_double(tmp, x);
    if (p == NULL) return NULL;
    return PyBytes_FromStringAndSize(tmp, p - tmp);
}

static PyMethodDef Encoder_methods[] = {
    {"prediction", (PyCFunction)(void (*)(void))Encoder_prediction, METH_FASTCALL,
     "prediction(inputs, outputs, latency_ms, segment) -> (event_id, payload) or None (use the checked path)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inferwatch.native._encode.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(model, model_version, ids): the common prediction.v1 event straight to JSON bytes.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

static PyMethodDef module_methods[] = {
    {"format_float", format_float, METH_O, "format_float(x) -> bytes: x as the encoder writes it"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_encode",
    "The SDK's common prediction event, checked and serialised to JSON bytes in one pass.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__encode(void) {
    init_tables();
    POW10[0] = 1;
    for (int i = 1; i < 23; i++) POW10[i] = POW10[i - 1] * 10;
    S_label = PyUnicode_InternFromString("label");
    S_score = PyUnicode_InternFromString("score");
    S_value = PyUnicode_InternFromString("value");
    S_prefix = PyUnicode_InternFromString("prefix");
    S_counter = PyUnicode_InternFromString("counter");
    if (!S_label || !S_score || !S_value || !S_prefix || !S_counter) return NULL;
    if (PyType_Ready(&EncoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&EncoderType);
    if (PyModule_AddObject(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(&EncoderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
