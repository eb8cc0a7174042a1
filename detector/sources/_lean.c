/* The compiled hot loop of the eBPF source: walk the ring buffer and decode its records.
 *
 * A CPython extension (not ctypes/cffi): the work per record is building Python objects (the
 * Event, its args and ctx dicts), which only the C API does without a foreign-call cost per
 * record. It decodes the simple records (the events of detector/sources/argspec.py's table
 * with no process context, socket tuple or sockaddr: open/openat/close/fcntl/dup...), the
 * clone family and the socket events itself, and hands every other record (execve...) to the
 * pure-Python decoder, so both give the same Event.
 *
 * setup(event_type, fields, table, families, fallback) is called once by detector/sources/fast.py:
 *   event_type  detector.events.Event (a slots dataclass: its slots are set directly)
 *   fields      its field names, in order
 *   table       {nr: (name, ((param, letter, index), ...))}
 *   families    {nr: (name, mode)}: the clone family (_lean_proc.c) and the socket events
 *               (_lean_sock.c), modes as in _lean.h
 *   fallback    decode(buffer, num, boot_to_epoch_ns, pos) -> Event, for the other records
 * decode(buffer, num, boot, pos) -> Event                  one record (the Python signature)
 * consume(buffer, base, mask, cons_pos, prod_pos, limit, first, boot) -> (events, cons_pos)
 *   the records between the two positions (the protocol of detector/bpf/ringbuf.py).
 * consume(..., ts_limit[, scan]) -> (events, cons_pos, busy, last_ts)
 *   the same, stopping also at the first record whose ts is above ts_limit; whether a busy
 *   record stopped it; the largest ts taken (0: none). scan: None for each record, no decoding.
 * Every read is bounds-checked against the buffer; a record that does not fit is given to the
 * fallback, which raises as the Python path does.
 */
#include "_lean.h"

static const char *FIELD_NAMES[N_FIELDS] = {
    "num", "ts", "type", "tid", "dir", "cpu", "res", "args", "thread", "fd", "source",
    "plugin_data", "plugin_fields", "ctx"};
static PyTypeObject *event_type;
static Py_ssize_t offsets[N_FIELDS];
static struct entry *table[MAX_NR];
static signed char families[MAX_NR]; /* 1 + the family mode (_lean.h) of a syscall, 0: none */
static PyObject *family_names[MAX_NR];
static PyObject *fallback;
static PyObject *s_dir, *s_source, *k_tid, *k_pid, *k_ppid, *k_comm, *k_uid, *k_gid;

static PyObject *call_fallback(PyObject *buf, long long num, long long boot, Py_ssize_t pos)
{
    return PyObject_CallFunction(fallback, "OLLn", buf, num, boot, pos);
}

/* A user string: trailing NULs dropped, UTF-8 with surrogateescape (as Python's _str). */
static PyObject *user_str(const char *p, Py_ssize_t n)
{
    while (n > 0 && p[n - 1] == 0)
        n--;
    return PyUnicode_DecodeUTF8(p, n, "surrogateescape");
}

static PyObject *param_value(const struct param *pm, const struct hdr *h, PyObject **strs)
{
    uint64_t a = pm->index < 6 ? h->args[pm->index] : 0;
    switch (pm->letter) {
    case 'r': return PyLong_FromLongLong(h->ret);
    case 's': Py_INCREF(strs[pm->index]); return strs[pm->index];
    case 'a': return PyLong_FromUnsignedLongLong(a);
    case 'i': return PyLong_FromLong((int32_t)(uint32_t)a);
    case 'u': return PyLong_FromUnsignedLong((uint32_t)a);
    case 'l': return PyLong_FromLongLong((int64_t)a);
    default: Py_RETURN_NONE;
    }
}

int lean_set_item(PyObject *d, PyObject *k, PyObject *v)
{
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(d, k, v);
    Py_DECREF(v);
    return rc;
}

static PyObject *make_ctx(const struct hdr *h)
{
    PyObject *ctx = PyDict_New();
    if (ctx == NULL)
        return NULL;
    size_t cl = strnlen(h->comm, sizeof h->comm);
    if (lean_set_item(ctx, k_tid, PyLong_FromUnsignedLong((uint32_t)h->pid_tgid)) ||
        lean_set_item(ctx, k_pid, PyLong_FromUnsignedLong((uint32_t)(h->pid_tgid >> 32))) ||
        lean_set_item(ctx, k_ppid, PyLong_FromUnsignedLong(h->ppid)) ||
        lean_set_item(ctx, k_comm, PyUnicode_DecodeUTF8(h->comm, (Py_ssize_t)cl, "replace")) ||
        lean_set_item(ctx, k_uid, PyLong_FromUnsignedLong((uint32_t)h->uid_gid)) ||
        lean_set_item(ctx, k_gid, PyLong_FromUnsignedLong((uint32_t)(h->uid_gid >> 32)))) {
        Py_DECREF(ctx);
        return NULL;
    }
    return ctx;
}

static PyObject *make_args(const struct entry *e, const struct hdr *h, const char *sp)
{
    PyObject *strs[3] = {NULL, NULL, NULL};
    PyObject *args = NULL;
    Py_ssize_t off = 0;
    for (int i = 0; i < 3; i++) {
        strs[i] = user_str(sp + off, h->len[i]);
        if (strs[i] == NULL)
            goto out;
        off += h->len[i];
    }
    args = PyDict_New();
    if (args == NULL)
        goto out;
    for (int i = 0; i < e->n; i++) {
        if (lean_set_item(args, e->p[i].name, param_value(&e->p[i], h, strs))) {
            Py_CLEAR(args);
            goto out;
        }
    }
out:
    for (int i = 0; i < 3; i++)
        Py_XDECREF(strs[i]);
    return args;
}

static void set_slot(PyObject *obj, int field, PyObject *v)
{
    PyObject **slot = (PyObject **)((char *)obj + offsets[field]);
    *slot = v; /* a new object's slots are NULL: nothing to release */
}

static PyObject *new_event(PyObject *name, const struct hdr *h, long long num,
                           long long boot, PyObject *args, PyObject *ctx)
{
    PyObject *ev = event_type->tp_alloc(event_type, 0);
    if (ev == NULL) {
        Py_DECREF(args);
        Py_DECREF(ctx);
        return NULL;
    }
    PyObject *vals[N_FIELDS] = {
        PyLong_FromLongLong(num), PyLong_FromLongLong((long long)h->ts + boot), name,
        PyLong_FromUnsignedLong((uint32_t)h->pid_tgid), s_dir,
        PyLong_FromUnsignedLong(h->cpu), PyLong_FromLongLong(h->ret), args, Py_None, Py_None,
        s_source, Py_None, Py_None, ctx};
    int failed = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        if (i == F_TYPE || i == F_DIR || i == F_SOURCE || i == F_THREAD || i == F_FD ||
            i == F_PLUGIN_DATA || i == F_PLUGIN_FIELDS) {
            Py_INCREF(vals[i]); /* borrowed constants */
        } else if (vals[i] == NULL) {
            failed = 1;
            vals[i] = Py_NewRef(Py_None);
        }
        set_slot(ev, i, vals[i]); /* args and ctx: their reference moves into the event */
    }
    if (failed) {
        Py_DECREF(ev);
        return NULL;
    }
    return ev;
}

PyObject *lean_decode_record(PyObject *buf, const char *data, Py_ssize_t len,
                             Py_ssize_t pos, long long num, long long boot)
{
    struct hdr h;
    if (pos < 0 || pos + HDR_SIZE > len)
        return call_fallback(buf, num, boot, pos);
    memcpy(&h, data + pos, sizeof h);
    const struct entry *e = h.nr < MAX_NR ? table[h.nr] : NULL;
    int mode = (h.nr < MAX_NR ? families[h.nr] : 0) - 1;
    Py_ssize_t strs_len = (Py_ssize_t)h.len[0] + h.len[1] + h.len[2];
    Py_ssize_t body = (h.kind & K_PROC ? PROC_SIZE : 0) + (h.kind & K_TUPLE ? TUPLE_SIZE : 0);
    PyObject *args, *ctx, *name = e != NULL ? e->name : mode >= 0 ? family_names[h.nr] : NULL;
    if (mode >= SOCK_CONNECT ? (h.kind & K_PROC) != 0
        : mode >= 0 ? (h.kind & (K_PROC | K_TUPLE)) != K_PROC || h.len[3]
        : e == NULL || (h.kind & (K_PROC | K_TUPLE | K_DIR)) || h.len[3])
        return call_fallback(buf, num, boot, pos);  /* K_DIR: ctx["dirpath"], decode.py's */
    if (pos + HDR_SIZE + body + strs_len + h.len[3] > len)
        return call_fallback(buf, num, boot, pos);
    if ((ctx = make_ctx(&h)) == NULL)
        return NULL;
    const char *rest = data + pos + HDR_SIZE;
    args = mode >= SOCK_CONNECT ? lean_sock(&h, rest, mode, ctx)
         : mode >= 0 ? lean_clone(&h, rest, mode, ctx) : make_args(e, &h, rest);
    if (args == NULL) {
        Py_DECREF(ctx);
        return NULL;
    }
    return new_event(name, &h, num, boot, args, ctx);
}

int lean_ready(void)
{
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_lean.setup() was not called");
        return 0;
    }
    return 1;
}

static PyObject *py_decode(PyObject *self, PyObject *a)
{
    PyObject *buf;
    long long num, boot;
    Py_ssize_t pos;
    Py_buffer view;
    if (!PyArg_ParseTuple(a, "OLLn", &buf, &num, &boot, &pos) || !lean_ready())
        return NULL;
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *ev = lean_decode_record(buf, view.buf, view.len, pos, num, boot);
    PyBuffer_Release(&view);
    return ev;
}

static int load_offsets(PyObject *type, PyObject *fields)
{
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != N_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "Event has not the fields this module knows");
        return -1;
    }
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject *name = PyTuple_GET_ITEM(fields, i);
        if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, FIELD_NAMES[i])) {
            PyErr_Format(PyExc_ValueError, "Event field %d is not %s", i, FIELD_NAMES[i]);
            return -1;
        }
        PyObject *d = PyDict_GetItemWithError(((PyTypeObject *)type)->tp_dict, name);
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) ||
            ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_ValueError, "Event.%s is not an object slot", FIELD_NAMES[i]);
            return -1;
        }
        offsets[i] = ((PyMemberDescrObject *)d)->d_member->offset;
    }
    return 0;
}

static int load_entry(PyObject *key, PyObject *value)
{
    long nr = PyLong_AsLong(key);
    PyObject *name, *params;
    if ((nr == -1 && PyErr_Occurred()) || nr < 0 || nr >= MAX_NR) {
        PyErr_Format(PyExc_ValueError, "syscall number %ld out of range", nr);
        return -1;
    }
    if (!PyArg_ParseTuple(value, "UO!", &name, &PyTuple_Type, &params))
        return -1;
    if (PyTuple_GET_SIZE(params) > MAX_PARAMS) {
        PyErr_Format(PyExc_ValueError, "%U has more than %d parameters", name, MAX_PARAMS);
        return -1;
    }
    struct entry *e = PyMem_Calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    Py_INCREF(name);
    e->name = name;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(params); i++) {
        PyObject *pname;
        int letter, index;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(params, i), "UCi", &pname, &letter, &index))
            return -1;
        if (!strchr("rsailuN", letter) || index < 0 || index > 5 ||
            (letter == 's' && index > 2)) {
            PyErr_Format(PyExc_ValueError, "%U: bad parameter code %c%d", pname, letter, index);
            return -1;
        }
        Py_INCREF(pname);
        e->p[i] = (struct param){pname, (char)letter, index};
        e->n++;
    }
    table[nr] = e; /* set once per process (setup refuses a second call) */
    return 0;
}

static int load_family(PyObject *key, PyObject *value)
{
    long nr = PyLong_AsLong(key);
    PyObject *name;
    int mode;
    if ((nr == -1 && PyErr_Occurred()) || nr < 0 || nr >= MAX_NR) {
        PyErr_Format(PyExc_ValueError, "syscall number %ld out of range", nr);
        return -1;
    }
    if (!PyArg_ParseTuple(value, "Ui", &name, &mode))
        return -1;
    if (mode < 0 || mode >= M_COUNT) {
        PyErr_Format(PyExc_ValueError, "%U: family %d is not 0..%d", name, mode, M_COUNT - 1);
        return -1;
    }
    family_names[nr] = Py_NewRef(name);
    families[nr] = (signed char)(mode + 1);
    return 0;
}

static PyObject *py_setup(PyObject *self, PyObject *a)
{
    PyObject *type, *fields, *tab, *clo, *fb, *key, *value;
    Py_ssize_t i = 0;
    if (!PyArg_ParseTuple(a, "O!O!O!O!O", &PyType_Type, &type, &PyTuple_Type, &fields,
                          &PyDict_Type, &tab, &PyDict_Type, &clo, &fb))
        return NULL;
    if (event_type != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_lean.setup() was already called");
        return NULL;
    }
    if (load_offsets(type, fields) < 0)
        return NULL;
    while (PyDict_Next(tab, &i, &key, &value))
        if (load_entry(key, value) < 0)
            return NULL;
    i = 0;
    while (PyDict_Next(clo, &i, &key, &value))
        if (load_family(key, value) < 0)
            return NULL;
    if (lean_proc_init() < 0 || lean_sock_init() < 0)
        return NULL;
    s_dir = PyUnicode_InternFromString("<");
    s_source = PyUnicode_InternFromString("syscall");
    k_tid = PyUnicode_InternFromString("tid");
    k_pid = PyUnicode_InternFromString("pid");
    k_ppid = PyUnicode_InternFromString("ppid");
    k_comm = PyUnicode_InternFromString("comm");
    k_uid = PyUnicode_InternFromString("uid");
    k_gid = PyUnicode_InternFromString("gid");
    if (!s_dir || !s_source || !k_tid || !k_pid || !k_ppid || !k_comm || !k_uid || !k_gid)
        return NULL;
    Py_INCREF(fb);
    fallback = fb;
    Py_INCREF(type);
    event_type = (PyTypeObject *)type;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup", py_setup, METH_VARARGS, "Set the Event type, the parameter table, the fallback."},
    {"decode", py_decode, METH_VARARGS, "The record at pos as an Event."},
    {"consume", lean_consume, METH_VARARGS, "Decode the ring buffer's records: (events, pos)."},
    {"apply_ctx", lean_apply_ctx, METH_VARARGS, "state/execs.py's apply_ctx(th, args, ctx)."},
    {"exe_facts", lean_exe_facts, METH_VARARGS, "state/execs.py's set_exe_facts, but upper."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_lean",
    .m_doc = "The compiled hot loop of the eBPF source.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__lean(void) { return PyModule_Create(&module); }
