/*
 * srsfwd.dkim._canon: the two whole-body scans of srsfwd/dkim/canon.py, compiled.
 *
 * Why C: no maintained library does DKIM relaxed canonicalisation in compiled code (dkimpy
 * runs Python regular expressions over the body), and the best pure-Python forms,
 * canon.py's whole-body bytes passes and regex scan, cost about 2 ms per 200 KB of
 * white-space-heavy text, more than the RSA-2048 signature of the message. Each function
 * here is one pass. The extension is optional: when it is not built (no compiler),
 * canon.py uses its Python forms, which give the same results
 * (tests/unit/dkim/test_canon_compiled.py compares them with hypothesis).
 *
 * relaxed_lines(piece) does exactly what canon.py's Python form does to a piece of a body
 * (RFC 6376 section 3.4.4): every run of SP and HTAB becomes one SP, and a run right
 * before CR LF goes altogether. Only CR LF ends a line: a bare CR or a bare LF is ordinary
 * text, and a run at the very end of the piece (no CR LF after it) becomes one SP.
 *
 * find_bare_lf(data) is where the first LF without a CR right before it is, or -1: whether
 * a message needs converting to CRLF form.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#endif

/* Inputs at least this large are done without the GIL (bytes are immutable). */
#define RELEASE_GIL_FROM 65536

#define IS_BLANK(c) ((c) == ' ' || (c) == '\t')

/*
 * How many bytes at the start of in[0:n] the canonicalisation leaves as they are, copied to
 * `out` when it is not NULL: up to the first tab, or the first space followed by SP, HTAB
 * or CR LF. With SSE2 (every x86-64) it checks 16 bytes at a time, the last few one by
 * one; the blocks also stop at a space before a bare CR, which the caller's run handling
 * keeps as it is, so stopping there early only costs time.
 */
static Py_ssize_t
copy_unchanged_prefix(const unsigned char *in, Py_ssize_t n, unsigned char *out)
{
    Py_ssize_t i = 0;
#if defined(__SSE2__) && defined(__GNUC__)
    const __m128i space = _mm_set1_epi8(' ');
    const __m128i tab = _mm_set1_epi8('\t');
    const __m128i cr = _mm_set1_epi8('\r');
    for (; i + 17 <= n; i += 16) { /* each block and the byte after it */
        __m128i here = _mm_loadu_si128((const __m128i *)(in + i));
        __m128i next = _mm_loadu_si128((const __m128i *)(in + i + 1));
        __m128i next_ends_run = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(next, space), _mm_cmpeq_epi8(next, tab)),
            _mm_cmpeq_epi8(next, cr));
        __m128i changed = _mm_or_si128(
            _mm_cmpeq_epi8(here, tab),
            _mm_and_si128(_mm_cmpeq_epi8(here, space), next_ends_run));
        int mask = _mm_movemask_epi8(changed);
        if (out != NULL) {
            /* out has room: the caller's output is as long as the input. */
            _mm_storeu_si128((__m128i *)(out + i), here);
        }
        if (mask != 0) {
            return i + __builtin_ctz((unsigned int)mask);
        }
    }
#endif
    for (; i < n; i++) {
        unsigned char c = in[i];
        if (c == '\t') {
            return i;
        }
        if (c == ' ' && i + 1 < n) {
            unsigned char next = in[i + 1];
            if (IS_BLANK(next) || (next == '\r' && i + 2 < n && in[i + 2] == '\n')) {
                return i;
            }
        }
        if (out != NULL) {
            out[i] = c;
        }
    }
    return n;
}

/*
 * Canonicalises in[start:n] into out[start:], where in[start] is the first byte that
 * changes (a tab or space starting a run) and out[0:start] holds the bytes before it;
 * returns the length written. Each run of SP/HTAB becomes one SP, or nothing before CR LF;
 * what lies between runs is copied by copy_unchanged_prefix.
 */
static Py_ssize_t
reduce_blank_runs(const unsigned char *in, Py_ssize_t n, Py_ssize_t start, unsigned char *out)
{
    Py_ssize_t read = start;
    Py_ssize_t written = start;
    while (read < n) {
        Py_ssize_t after = read; /* in[read] is SP or HTAB, and no blank comes before it */
        while (after < n && IS_BLANK(in[after])) {
            after++;
        }
        if (!(n - after >= 2 && in[after] == '\r' && in[after + 1] == '\n')) {
            out[written++] = ' ';
        }
        Py_ssize_t kept = copy_unchanged_prefix(in + after, n - after, out + written);
        written += kept;
        read = after + kept;
    }
    return written;
}

static PyObject *
relaxed_lines(PyObject *module, PyObject *piece)
{
    (void)module;
    if (!PyBytes_Check(piece)) {
        PyErr_Format(PyExc_TypeError, "relaxed_lines() takes bytes, not %.100s",
                     Py_TYPE(piece)->tp_name);
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(piece);
    Py_ssize_t n = PyBytes_GET_SIZE(piece);
    Py_ssize_t start;
    if (n >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        start = copy_unchanged_prefix(in, n, NULL);
        Py_END_ALLOW_THREADS
    }
    else {
        start = copy_unchanged_prefix(in, n, NULL);
    }
    if (start == n) {
        if (PyBytes_CheckExact(piece)) {
            return Py_NewRef(piece); /* already canonical: no copy */
        }
        return PyBytes_FromStringAndSize((const char *)in, n);
    }
    /* The output is never longer than the input: allocated once, shrunk at the end. */
    PyObject *result = PyBytes_FromStringAndSize(NULL, n);
    if (result == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    memcpy(out, in, (size_t)start);
    Py_ssize_t length;
    if (n >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        length = reduce_blank_runs(in, n, start, out);
        Py_END_ALLOW_THREADS
    }
    else {
        length = reduce_blank_runs(in, n, start, out);
    }
    if (_PyBytes_Resize(&result, length) < 0) {
        return NULL;
    }
    return result;
}

/* Where the first LF of in[0:n] without a CR right before it is, or -1. */
static Py_ssize_t
first_bare_lf(const unsigned char *in, Py_ssize_t n)
{
    if (n == 0) {
        return -1;
    }
    if (in[0] == '\n') {
        return 0;
    }
    Py_ssize_t i = 1;
#if defined(__SSE2__) && defined(__GNUC__)
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i cr = _mm_set1_epi8('\r');
    for (; i + 16 <= n; i += 16) { /* each block and the byte before it */
        __m128i here = _mm_loadu_si128((const __m128i *)(in + i));
        __m128i before = _mm_loadu_si128((const __m128i *)(in + i - 1));
        int mask = _mm_movemask_epi8(
            _mm_andnot_si128(_mm_cmpeq_epi8(before, cr), _mm_cmpeq_epi8(here, lf)));
        if (mask != 0) {
            return i + __builtin_ctz((unsigned int)mask);
        }
    }
#endif
    for (; i < n; i++) {
        if (in[i] == '\n' && in[i - 1] != '\r') {
            return i;
        }
    }
    return -1;
}

static PyObject *
find_bare_lf(PyObject *module, PyObject *data)
{
    (void)module;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "find_bare_lf() takes bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    Py_ssize_t found;
    if (n >= RELEASE_GIL_FROM) {
        Py_BEGIN_ALLOW_THREADS
        found = first_bare_lf(in, n);
        Py_END_ALLOW_THREADS
    }
    else {
        found = first_bare_lf(in, n);
    }
    return PyLong_FromSsize_t(found);
}

static PyMethodDef canon_methods[] = {
    {"relaxed_lines", relaxed_lines, METH_O,
     "relaxed_lines(piece, /)\n--\n\n"
     "``piece`` with every run of SP/HTAB as one SP, and the runs right before CR LF "
     "removed\n(RFC 6376 section 3.4.4); the same bytes as canon.py's Python form."},
    {"find_bare_lf", find_bare_lf, METH_O,
     "find_bare_lf(data, /)\n--\n\n"
     "Where the first LF without a CR right before it is in ``data``, or -1."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot canon_slots[] = {
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef canon_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "srsfwd.dkim._canon",
    .m_doc = "The whole-body scans of srsfwd.dkim.canon, compiled.",
    .m_size = 0,
    .m_methods = canon_methods,
    .m_slots = canon_slots,
};

PyMODINIT_FUNC
PyInit__canon(void)
{
    return PyModuleDef_Init(&canon_module);
}
