/* The compiled read loop's ring walk: the records between the consumer and producer positions
 * of one ring buffer (the protocol of detector/bpf/ringbuf.py), decoded by _lean.c's
 * lean_decode_record, or only scanned for their timestamps (the merge of several rings in
 * detector/sources/fast.py settles its limit that way before decoding). consume()'s Python
 * signatures are in _lean.c's opening comment. */
#include "_lean.h"

/* The records from cons to prod (up to limit; stops at a busy record, and at the first record
 * whose ts is above ts_limit) as Events numbered from first; *cons is moved past them, *busy
 * says whether a busy record stopped it, *last is the largest ts taken (0: none). */
static PyObject *walk_ring(PyObject *buf, const Py_buffer *view, Py_ssize_t base,
                           unsigned long long mask, unsigned long long *cons,
                           unsigned long long prod, Py_ssize_t limit, long long first,
                           long long boot, unsigned long long ts_limit, int scan, int *busy,
                           unsigned long long *last)
{
    PyObject *out = PyList_New(0);
    const char *data = view->buf;
    unsigned long long pos = *cons;
    *busy = 0;
    *last = 0;
    while (out != NULL && pos < prod && PyList_GET_SIZE(out) < limit) {
        Py_ssize_t off = base + (Py_ssize_t)(pos & mask);
        if (off < 0 || off + RB_HDR > view->len)
            break;
        uint32_t ln = __atomic_load_n((const uint32_t *)(data + off), __ATOMIC_ACQUIRE);
        if (ln & RB_BUSY) {
            *busy = 1;
            break;
        }
        uint32_t size = ln & ~(RB_BUSY | RB_DISCARD);
        if (!(ln & RB_DISCARD)) {
            uint64_t ts = 0;
            if (size >= 8 && off + RB_HDR + 8 <= view->len)
                memcpy(&ts, data + off + RB_HDR, 8);
            if (ts > ts_limit)
                break;
            if (ts > *last)
                *last = ts;
            long long num = first + PyList_GET_SIZE(out);
            PyObject *ev = scan ? Py_NewRef(Py_None)
                                : lean_decode_record(buf, data, view->len, off + RB_HDR, num, boot);
            if (ev == NULL || PyList_Append(out, ev) < 0)
                Py_CLEAR(out);
            Py_XDECREF(ev);
        }
        pos += (size + RB_HDR + 7) & ~7ull;
    }
    *cons = pos;
    return out;
}

PyObject *lean_consume(PyObject *self, PyObject *a)
{
    PyObject *buf, *out;
    Py_ssize_t base, limit;
    unsigned long long mask, cons, prod, ts_limit = ~0ull, last;
    long long first, boot;
    int busy, scan = 0, walk = PyTuple_GET_SIZE(a) > 8;
    Py_buffer view;
    if (!PyArg_ParseTuple(a, "OnKKKnLL|Kp", &buf, &base, &mask, &cons, &prod, &limit, &first,
                          &boot, &ts_limit, &scan) || !lean_ready())
        return NULL;
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    out = walk_ring(buf, &view, base, mask, &cons, prod, limit, first, boot, ts_limit, scan,
                    &busy, &last);
    PyBuffer_Release(&view);
    if (out == NULL)
        return NULL;
    if (walk)
        return Py_BuildValue("(NKOK)", out, cons, busy ? Py_True : Py_False, last);
    return Py_BuildValue("(NK)", out, cons);
}
