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
 * recognise at once (a value of an unusual type, an invalid name, a non-finite float, a lone
 * surrogate, ...), and the caller then takes the fully checked path, which converts what can be
 * converted and names the offending field. The pure-Python twin is
 * inferwatch.sdk.encode.PyEncoder (same acceptance, same bytes; a parity test compares them).
 *
 * FastPrediction wraps an Encoder into InferenceLogger.prediction's whole common case (encode,
 * count, produce, spool on BufferError, serve delivery reports every 256 events); its twin and
 * reference is the Python method itself (see inferwatch.sdk.encode.fast_prediction).
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
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "contract_limits.h"  /* the contract's limits, generated from inferwatch/contract/limits.py */

#define SHORT IW_SHORT_TEXT_MAX
#define MAX_INPUTS IW_MAX_INPUTS
#define MAX_SEGMENT IW_MAX_SEGMENT
#define MAX_NAME IW_NAME_MAX

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

/* The contract's name alphabet: what check_name() accepts (and what JSON needs no escape for) */
static const unsigned char NAME_OK[256] = IW_NAME_CHARS_INIT;
/* 0: copy as is; 1: escape (", \, and bytes < 0x20) */
static unsigned char NEEDS_ESC[256];
static const char HEX[] = "0123456789abcdef";

static void init_tables(void) {
    for (int c = 0; c < 256; c++) {
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

static const char DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* decimal digits of v, written at p; returns the end */
static char *u64_digits(char *p, uint64_t v) {
    char tmp[24];
    char *t = tmp + sizeof tmp;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        t -= 2;
        memcpy(t, DIGIT_PAIRS + 2 * r, 2);
    }
    if (v >= 10) {
        t -= 2;
        memcpy(t, DIGIT_PAIRS + 2 * v, 2);
    } else {
        *--t = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof tmp - t);
    memcpy(p, t, n);
    return p + n;
}

/* v written with exactly `width` digits, zero-padded on the left */
static char *u64_digits_padded(char *p, uint64_t v, int width) {
    int i = width;
    while (i >= 2) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        i -= 2;
        memcpy(p + i, DIGIT_PAIRS + 2 * r, 2);
    }
    if (i) p[0] = (char)('0' + v % 10);
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

/* The integer closest to x * 10**f (x = m / 2**s) inside x's rounding interval [lo, hi] (units
 * of 2**-(s+2)), ties to even; 0 when there is none. Only floor and ceil of x * 10**f can be the
 * closest, and if any integer is inside, one of them is (the interval holds x). Exact: every
 * product stays below 2**127 for f <= 21 and m < 2**53. */
static inline int pick_at(uint64_t m, int s, u128 lo, u128 hi, int inclusive, int f, uint64_t *out) {
    u128 P = POW10[f];
    u128 mp = (u128)m * P;
    u128 c = mp >> s;
    u128 rem = mp - (c << s);
    if (rem == 0) {  /* x * 10**f is an integer: x itself, inside and closest */
        *out = (uint64_t)c;
        return 1;
    }
    int sh = s + 2;
    u128 lop = lo * P, hip = hi * P;
    u128 c0 = c << sh, c1 = (c + 1) << sh;
    int in0 = inclusive ? (c0 >= lop && c0 <= hip) : (c0 > lop && c0 < hip);
    int in1 = inclusive ? (c1 >= lop && c1 <= hip) : (c1 > lop && c1 < hip);
    if (in0 && in1) {
        u128 half = (u128)1 << (s - 1);
        *out = (uint64_t)(rem < half ? c : rem > half ? c + 1 : (c & 1) ? c + 1 : c);
        return 1;
    }
    if (in0 | in1) {
        *out = (uint64_t)(in0 ? c : c + 1);
        return 1;
    }
    return 0;
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
    uint64_t d;
    int f;
    /* Short decimals (prices, halves, rounded features) first: 0..2 fractional digits -- unless
     * x * 100 is clearly not within x's rounding interval of an integer (the interval is
     * narrower than 2**-52 * x * 100, the rounding of ax * 100.0 adds at most 2**-52 of it;
     * 1e-14 leaves ample margin), as for most computed values. */
    double y = ax * 100.0;
    if (fabs(y - floor(y + 0.5)) <= y * 1e-14) {
        /* f = 0 never holds for a non-integer below 2**53: x and the integers are multiples of
         * the ulp, so the nearest integer is a whole ulp away, beyond the half-ulp interval. */
        for (f = 1; f <= 2; f++)
            if (pick_at(m, s, lo, hi, inclusive, f, &d)) goto emit;
    }
    {
        /* Otherwise start from 17 significant digits, which always identify x, and drop digits
         * while the interval still holds a number with one fewer: integers in [vm, vp] at f
         * fractional digits; one exists at f - 1 iff ceil(vm / 10) <= floor(vp / 10). */
        int sh = s + 2;
        int k_est = ((52 - s) * 78913) >> 18; /* floor((52 - s) * log10(2)) <= floor(log10(x)) */
        f = 16 - k_est;
        if (f > 21) f = 21; /* x >= 1e-5 needs at most 21 */
        if (f < 3) f = 3;
        u128 P = POW10[f];
        u128 hp = hi * P, lp = lo * P;
        uint64_t vp = (uint64_t)(hp >> sh);
        if (!inclusive && ((u128)vp << sh) == hp) vp--;
        uint64_t vm = (uint64_t)((lp + (((u128)1 << sh) - 1)) >> sh);
        if (!inclusive && ((u128)vm << sh) == lp) vm++;
        while (f > 3) {
            uint64_t vp10 = vp / 10, vm10 = (vm + 9) / 10;
            if (vm10 > vp10) break;
            vp = vp10;
            vm = vm10;
            f--;
        }
        if (!pick_at(m, s, lo, hi, inclusive, f, &d)) return double_slow(p, ax); /* cannot happen */
    }
emit:
    if (f == 0) {
        p = u64_digits(p, d);
        memcpy(p, ".0", 2);
        return p + 2;
    }
    {
        uint64_t P = (uint64_t)POW10[f];
        p = u64_digits(p, d / P);
        *p++ = '.';
        /* f digits, the last one not zero (else f - 1 digits would have done) */
        return u64_digits_padded(p, d % P, f);
    }
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
    PyObject *mid;       /* bytes: ,"model":"M","model_version":"V","inputs": */
    PyObject *counter;   /* the IdGenerator's itertools.count (shared with the checked path) */
    char prefix[72];     /* the IdGenerator's prefix (ASCII) */
    Py_ssize_t prefix_len;
} Encoder;

static int Encoder_init(Encoder *self, PyObject *args, PyObject *kwds) {
    PyObject *model, *version;
    static char *kw[] = {"model", "model_version", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UU", kw, &model, &version)) return -1;
    char stack[512];
    Buf b = {stack, stack + sizeof stack, stack, NULL};
    int ok = 1;
    static const char A[] = ",\"model\":", C[] = ",\"model_version\":", E[] = ",\"inputs\":";
    memcpy(b.p, A, sizeof A - 1);
    b.p += sizeof A - 1;
    /* names are checked by the logger before; a str of any content is still escaped right */
    if (write_str(&b, model) <= 0) ok = 0;
    if (ok && (size_t)(b.end - b.p) > sizeof C) {
        memcpy(b.p, C, sizeof C - 1);
        b.p += sizeof C - 1;
    } else {
        ok = 0;
    }
    if (ok && write_str(&b, version) <= 0) ok = 0;
    if (ok && (size_t)(b.end - b.p) > sizeof E) {
        memcpy(b.p, E, sizeof E - 1);
        b.p += sizeof E - 1;
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
    return 0;
}

static void Encoder_dealloc(Encoder *self) {
    Py_XDECREF(self->mid);
    Py_XDECREF(self->counter);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* use_ids(prefix, counter): where event ids come from (IdGenerator.subscribe calls it at once and
 * again in a forked child, which gets a fresh prefix and counter) */
static PyObject *Encoder_use_ids(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_CheckExact(args[0]) || !PyUnicode_IS_COMPACT_ASCII(args[0]) ||
        PyUnicode_GET_LENGTH(args[0]) > 64 || !PyIter_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "use_ids(prefix: ASCII str of at most 64 chars, counter: iterator of ints)");
        return NULL;
    }
    self->prefix_len = PyUnicode_GET_LENGTH(args[0]);
    memcpy(self->prefix, PyUnicode_DATA(args[0]), (size_t)self->prefix_len);
    Py_INCREF(args[1]);
    Py_XSETREF(self->counter, args[1]);
    Py_RETURN_NONE;
}

/* The common event's payload (new reference) and its id (*eid_out, new reference); NULL without
 * an exception set when the call is not the common case (take the checked path). */
static PyObject *encode_event(Encoder *self, PyObject *inputs, PyObject *outputs, PyObject *latency,
                              PyObject *segment, PyObject **eid_out) {
    if (!PyDict_CheckExact(inputs) || !PyDict_CheckExact(outputs)) return NULL;
    double lat = 0.0;
    if (latency != Py_None) {
        if (!PyFloat_CheckExact(latency)) return NULL;
        lat = PyFloat_AS_DOUBLE(latency);
        if (!(lat >= 0.0 && lat < 1e300)) return NULL;  /* NaN fails too */
    }
    int with_segment = 0;
    if (segment != Py_None) {
        if (!PyDict_CheckExact(segment)) return NULL;  /* "", [] ...: the checked path decides */
        with_segment = PyDict_GET_SIZE(segment) > 0;
    }
    if (self->counter == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Encoder: use_ids() was never called");
        return NULL;
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
        return NULL;  /* r < 0: the exception is set */
    }
    *b.p++ = '}';

    /* the id: prefix + the shared counter's next value */
    PyObject *n = PyIter_Next(self->counter);
    if (n == NULL) {
        PyMem_Free(b.heap);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "Encoder: the id counter is exhausted");
        return NULL;
    }
    unsigned long long seq = PyLong_AsUnsignedLongLong(n);
    Py_DECREF(n);
    if (seq == (unsigned long long)-1 && PyErr_Occurred()) {
        PyMem_Free(b.heap);
        return NULL;
    }
    char idbuf[100];
    memcpy(idbuf, self->prefix, (size_t)self->prefix_len);
    char *ie = u64_digits(idbuf + self->prefix_len, (uint64_t)seq);
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
    *eid_out = eid;
    return payload;
}

/* prediction(inputs, outputs, latency_ms, segment) -> (event_id, payload) | None */
static PyObject *Encoder_prediction(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "prediction(inputs, outputs, latency_ms, segment)");
        return NULL;
    }
    PyObject *eid = NULL;
    PyObject *payload = encode_event(self, args[0], args[1], args[2], args[3], &eid);
    if (payload == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
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

static PyMethodDef Encoder_methods[] = {
    {"prediction", (PyCFunction)(void (*)(void))Encoder_prediction, METH_FASTCALL,
     "prediction(inputs, outputs, latency_ms, segment) -> (event_id, payload) or None (use the checked path)"},
    {"use_ids", (PyCFunction)(void (*)(void))Encoder_use_ids, METH_FASTCALL,
     "use_ids(prefix, counter): event ids are prefix + str(next(counter))"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inferwatch.native._encode.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Encoder(model, model_version): the common prediction.v1 event straight to JSON bytes.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_methods = Encoder_methods,
};

/* ------------------------------------------------------------------------------------------ */
/* FastPrediction: InferenceLogger.prediction's common case end to end                        */

/*
 * A callable with prediction()'s signature, bound to one logger:
 *   (inputs=None, outputs=None, *, latency_ms=None, segment=None, embedding=None, llm=None,
 *    lineage=None, tags=None, error=None, prediction_id=None, ts_ms=None) -> prediction_id
 * It does what the Python method's fast path does -- encode, count `logged`, produce(), spool on
 * BufferError, count a KafkaException, serve delivery reports every 256 events -- without the
 * interpreter. Everything else goes to the logger's Python code: `checked` (the full check) for
 * uncommon events or once disabled (closed), `full` (the Python method itself) for argument
 * lists it does not parse, so TypeErrors read the same.
 */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Encoder *enc;
    PyObject *produce;          /* Producer.produce (bound) */
    PyObject *topic, *key;
    PyObject *logged;           /* itertools.count of Counters.logged_c */
    PyObject *on_overflow;      /* (payload) -> None: BufferError, spool it */
    PyObject *on_produce_error; /* (exc, payload) -> None */
    PyObject *kafka_exc;        /* confluent_kafka.KafkaException */
    PyObject *every;            /* () -> None, called every 256 events: serve delivery reports */
    PyObject *checked;          /* (inputs, outputs, latency_ms, segment, embedding, llm, lineage, tags,
                                   error, prediction_id, ts_ms) -> str */
    PyObject *full;             /* the Python method, for argument lists not parsed here */
    int disabled;
} FastPrediction;

static PyObject *KW[11];  /* interned keyword names in signature order */
static const char *KW_NAMES[11] = {"inputs", "outputs", "latency_ms", "segment", "embedding", "llm",
                                   "lineage", "tags", "error", "prediction_id", "ts_ms"};

static PyObject *FastPrediction_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf,
                                           PyObject *kwnames) {
    FastPrediction *self = (FastPrediction *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a[11] = {Py_None, Py_None, Py_None, Py_None, Py_None, Py_None,
                       Py_None, Py_None, Py_None, Py_None, Py_None};
    if (nargs > 2) goto full;
    for (Py_ssize_t i = 0; i < nargs; i++) a[i] = args[i];
    if (kwnames != NULL) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t j = 0; j < nk; j++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, j);
            int slot = -1;
            for (int i = 0; i < 11; i++)
                if (name == KW[i]) { slot = i; break; }
            if (slot < 0) {  /* not interned (e.g. **dict with built keys): compare by value */
                for (int i = 0; i < 11; i++)
                    if (PyUnicode_Check(name) && PyUnicode_Compare(name, KW[i]) == 0) { slot = i; break; }
            }
            if (slot < 0 || slot < nargs) goto full;  /* unknown or given twice: Python's TypeError */
            a[slot] = args[nargs + j];
        }
    }
    if (self->disabled) goto checked;
    for (int i = 4; i < 11; i++)
        if (a[i] != Py_None) goto checked;
    {
        PyObject *eid = NULL;
        PyObject *payload = encode_event(self->enc, a[0], a[1], a[2], a[3], &eid);
        if (payload == NULL) {
            if (PyErr_Occurred()) return NULL;
            goto checked;
        }
        PyObject *n = PyIter_Next(self->logged);
        if (n == NULL) {
            Py_DECREF(payload);
            Py_DECREF(eid);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "the logged counter is exhausted");
            return NULL;
        }
        long long seq = PyLong_AsLongLong(n);
        Py_DECREF(n);
        PyObject *pargs[3] = {self->topic, payload, self->key};
        PyObject *res = PyObject_Vectorcall(self->produce, pargs, 3, NULL);
        if (res != NULL) {
            Py_DECREF(res);
        } else if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            res = PyObject_CallOneArg(self->on_overflow, payload);
            if (res == NULL) goto fail;
            Py_DECREF(res);
        } else if (PyErr_ExceptionMatches(self->kafka_exc)) {
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            Py_XDECREF(type);
            Py_XDECREF(tb);
            PyObject *eargs[2] = {value ? value : Py_None, payload};
            res = PyObject_Vectorcall(self->on_produce_error, eargs, 2, NULL);
            Py_XDECREF(value);
            if (res == NULL) goto fail;
            Py_DECREF(res);
        } else {
            goto fail;
        }
        Py_DECREF(payload);
        if ((seq & 255) == 0) {
            res = PyObject_CallNoArgs(self->every);
            if (res == NULL) {
                Py_DECREF(eid);
                return NULL;
            }
            Py_DECREF(res);
        }
        return eid;
    fail:
        Py_DECREF(payload);
        Py_DECREF(eid);
        return NULL;
    }
checked:
    return PyObject_Vectorcall(self->checked, a, 11, NULL);
full:
    return PyObject_Vectorcall(self->full, args, nargsf, kwnames);
}

static int FastPrediction_init(FastPrediction *self, PyObject *args, PyObject *kwds) {
    static char *kw[] = {"encoder", "produce", "topic", "key", "logged", "on_overflow", "on_produce_error",
                         "kafka_exception", "every_256", "checked", "full", NULL};
    PyObject *o[11];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!OUSOOOOOOO", kw, &EncoderType, &o[0], &o[1], &o[2], &o[3],
                                     &o[4], &o[5], &o[6], &o[7], &o[8], &o[9], &o[10]))
        return -1;
    PyObject **slots[11] = {(PyObject **)&self->enc, &self->produce, &self->topic, &self->key, &self->logged,
                            &self->on_overflow, &self->on_produce_error, &self->kafka_exc, &self->every,
                            &self->checked, &self->full};
    for (int i = 0; i < 11; i++) {
        Py_INCREF(o[i]);
        Py_XSETREF(*slots[i], o[i]);
    }
    self->vectorcall = FastPrediction_vectorcall;
    self->disabled = 0;
    return 0;
}

static int FastPrediction_traverse(FastPrediction *self, visitproc visit, void *arg) {
    Py_VISIT(self->enc);
    Py_VISIT(self->produce);
    Py_VISIT(self->logged);
    Py_VISIT(self->on_overflow);
    Py_VISIT(self->on_produce_error);
    Py_VISIT(self->kafka_exc);
    Py_VISIT(self->every);
    Py_VISIT(self->checked);
    Py_VISIT(self->full);
    return 0;
}

static int FastPrediction_clear(FastPrediction *self) {
    Py_CLEAR(self->enc);
    Py_CLEAR(self->produce);
    Py_CLEAR(self->topic);
    Py_CLEAR(self->key);
    Py_CLEAR(self->logged);
    Py_CLEAR(self->on_overflow);
    Py_CLEAR(self->on_produce_error);
    Py_CLEAR(self->kafka_exc);
    Py_CLEAR(self->every);
    Py_CLEAR(self->checked);
    Py_CLEAR(self->full);
    return 0;
}

static void FastPrediction_dealloc(FastPrediction *self) {
    PyObject_GC_UnTrack(self);
    FastPrediction_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *FastPrediction_disable(FastPrediction *self, PyObject *unused) {
    self->disabled = 1;
    Py_RETURN_NONE;
}

static PyMethodDef FastPrediction_methods[] = {
    {"disable", (PyCFunction)FastPrediction_disable, METH_NOARGS,
     "Send every later call to the checked path (the logger is closing)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FastPredictionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "inferwatch.native._encode.FastPrediction",
    .tp_basicsize = sizeof(FastPrediction),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "InferenceLogger.prediction's common case in C (see inferwatch.sdk.encode.install_fast_prediction).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPrediction_init,
    .tp_dealloc = (destructor)FastPrediction_dealloc,
    .tp_traverse = (traverseproc)FastPrediction_traverse,
    .tp_clear = (inquiry)FastPrediction_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(FastPrediction, vectorcall),
    .tp_methods = FastPrediction_methods,
};

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
    if (!S_label || !S_score || !S_value) return NULL;
    for (int i = 0; i < 11; i++)
        if ((KW[i] = PyUnicode_InternFromString(KW_NAMES[i])) == NULL) return NULL;
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&FastPredictionType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&EncoderType);
    if (PyModule_AddObject(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(&EncoderType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&FastPredictionType);
    if (PyModule_AddObject(m, "FastPrediction", (PyObject *)&FastPredictionType) < 0) {
        Py_DECREF(&FastPredictionType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
