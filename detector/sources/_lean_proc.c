/* The compiled read loop's process events: the clone family (clone, clone3, fork, vfork) and
 * execve/execveat. The process context (struct proc_ctx) into ctx and Falco's clone or execve
 * parameters, as decode.py's _proc_ctx, _b_clone, _b_execve and _b_execveat make them (a
 * hypothesis test holds the two equal, tests/detector/sources/test_fast.py). */
#include "_lean.h"

struct proc_ctx {
    uint32_t loginuid, sessionid, tty_major, tty_minor, vpid, vtid_level, euid, egid;
    uint64_t cap_inh, cap_prm, cap_eff, exe_ino;
    int64_t exe_ctime, exe_mtime;
    uint32_t exe_dev, exe_flags;
    uint64_t cgroup_id;
    char exe_dname[32];
    char cgroup[4][96];
};
_Static_assert(sizeof(struct proc_ctx) == PROC_SIZE, "struct proc_ctx is 512 bytes");

#define LEAN_CLONE_THREAD 0x10000
#define CLONE_VFORK_VM (0x4000 | 0x100)
enum { K_LOGINUID, K_SID, K_TTY, K_VPID, K_EUID, K_EGID, K_CAPI, K_CAPP, K_CAPE, K_EXE_INO,
       K_CTIME, K_MTIME, K_EXE_DEV, K_UPPER, K_OVERLAY, K_MEMFD, K_DNAME, K_CGID, K_EFLAGS,
       K_CGROUP, K_CLONE_FLAGS, K_CHILD_TID, K_CHILD_PID, K_RES, K_EXE, K_ARGS, K_TID, K_PID,
       K_PTID, K_CWD, K_COMM, K_FLAGS, K_UID, K_GID, K_VTID, K_CTX_PID, K_CTX_PPID, K_FILENAME,
       K_TRUSTED, K_ENV, K_DIRFD, K_ARGV, K_COUNT };
static const char *NAMES[K_COUNT] = {
    "loginuid", "sid", "tty", "vpid", "euid", "egid", "cap_inheritable", "cap_permitted",
    "cap_effective", "exe_ino", "exe_ino_ctime", "exe_ino_mtime", "exe_dev", "exe_upper_layer",
    "exe_overlay", "exe_from_memfd", "exe_dname", "cgroup_id", "exe_flags", "cgroup",
    "clone_flags", "child_tid", "child_pid", "res", "exe", "args", "tid", "pid", "ptid", "cwd",
    "comm", "flags", "uid", "gid", "vtid", "pid", "ppid", "filename", "trusted_exepath", "env",
    "dirfd", "argv"};
static PyObject *keys[K_COUNT];

int lean_proc_init(void)
{
    for (int i = 0; i < K_COUNT; i++)
        if ((keys[i] = PyUnicode_InternFromString(NAMES[i])) == NULL)
            return -1;
    return 0;
}

static PyObject *text(const char *p, size_t max)
{
    return PyUnicode_DecodeUTF8(p, (Py_ssize_t)strnlen(p, max), "replace");
}

/* seconds * 1e9 as Python computes it (no overflow), or None when there is no inode */
static PyObject *ns(int64_t secs, uint64_t ino)
{
    if (!ino)
        Py_RETURN_NONE;
    PyObject *s = PyLong_FromLongLong(secs), *g = PyLong_FromLong(1000000000L), *r = NULL;
    if (s != NULL && g != NULL)
        r = PyNumber_Multiply(s, g);
    Py_XDECREF(s);
    Py_XDECREF(g);
    return r;
}

/* ctx["cgroup"] = "0::/a/b/c" from the up to four innermost-first path components (none:
 * no key); -1 on error. */
static int put_cgroup(PyObject *ctx, const struct proc_ctx *p)
{
    PyObject *parts = PyList_New(0);
    int rc = -1;
    if (parts == NULL)
        return -1;
    for (int i = 0; i < 4; i++) {
        PyObject *name = text(p->cgroup[i], sizeof p->cgroup[i]);
        if (name == NULL)
            goto out;
        int stop = PyUnicode_GET_LENGTH(name) == 0 ||
                   PyUnicode_CompareWithASCIIString(name, "/") == 0;
        if (stop || PyList_Insert(parts, 0, name) < 0) {
            Py_DECREF(name);
            if (stop)
                break;
            goto out;
        }
        Py_DECREF(name);
    }
    rc = 0;
    if (PyList_GET_SIZE(parts) > 0) {
        PyObject *sep = PyUnicode_FromString("/");
        PyObject *joined = sep ? PyUnicode_Join(sep, parts) : NULL;
        Py_XDECREF(sep);
        rc = joined ? lean_set_item(ctx, keys[K_CGROUP], PyUnicode_FromFormat("0::/%U", joined))
                    : -1;
        Py_XDECREF(joined);
    }
out:
    Py_DECREF(parts);
    return rc;
}

static int put_proc(PyObject *ctx, const struct proc_ctx *p)
{
    size_t dl = strnlen(p->exe_dname, sizeof p->exe_dname);
    int memfd = dl >= 6 && memcmp(p->exe_dname, "memfd:", 6) == 0;
    uint32_t ef = p->exe_flags;
    uint64_t tty = p->tty_major ? ((uint64_t)(p->tty_minor & 0xFF) | ((uint64_t)p->tty_major << 8) |
                                   ((uint64_t)(p->tty_minor & ~0xFFu) << 12)) : 0;
    long flags = (ef & 1 ? 2 : 0) | (memfd ? 4 : 0) | ((ef & 2) && !(ef & 1) ? 8 : 0);
    if (put_cgroup(ctx, p) < 0)
        return -1;
    return lean_set_item(ctx, keys[K_LOGINUID], PyLong_FromUnsignedLong(p->loginuid)) ||
        lean_set_item(ctx, keys[K_SID], PyLong_FromUnsignedLong(p->sessionid)) ||
        lean_set_item(ctx, keys[K_TTY], PyLong_FromUnsignedLongLong(tty)) ||
        lean_set_item(ctx, keys[K_VPID], PyLong_FromUnsignedLong(p->vpid)) ||
        lean_set_item(ctx, keys[K_EUID], PyLong_FromUnsignedLong(p->euid)) ||
        lean_set_item(ctx, keys[K_EGID], PyLong_FromUnsignedLong(p->egid)) ||
        lean_set_item(ctx, keys[K_CAPI], PyLong_FromUnsignedLongLong(p->cap_inh)) ||
        lean_set_item(ctx, keys[K_CAPP], PyLong_FromUnsignedLongLong(p->cap_prm)) ||
        lean_set_item(ctx, keys[K_CAPE], PyLong_FromUnsignedLongLong(p->cap_eff)) ||
        lean_set_item(ctx, keys[K_EXE_INO], p->exe_ino ? PyLong_FromUnsignedLongLong(p->exe_ino)
                                                      : Py_NewRef(Py_None)) ||
        lean_set_item(ctx, keys[K_CTIME], ns(p->exe_ctime, p->exe_ino)) ||
        lean_set_item(ctx, keys[K_MTIME], ns(p->exe_mtime, p->exe_ino)) ||
        lean_set_item(ctx, keys[K_EXE_DEV], PyLong_FromUnsignedLong(p->exe_dev)) ||
        lean_set_item(ctx, keys[K_UPPER], PyBool_FromLong(ef & 1)) ||
        lean_set_item(ctx, keys[K_OVERLAY], PyBool_FromLong(ef & 2)) ||
        lean_set_item(ctx, keys[K_MEMFD], PyBool_FromLong(memfd)) ||
        lean_set_item(ctx, keys[K_DNAME], text(p->exe_dname, sizeof p->exe_dname)) ||
        lean_set_item(ctx, keys[K_CGID], PyLong_FromUnsignedLongLong(p->cgroup_id)) ||
        lean_set_item(ctx, keys[K_EFLAGS], PyLong_FromLong(flags)) ? -1 : 0;
}

/* ctx[key] as a new reference (None when absent) */
static PyObject *from_ctx(PyObject *ctx, int key)
{
    PyObject *v = PyDict_GetItemWithError(ctx, keys[key]);
    return v ? Py_NewRef(v) : (PyErr_Occurred() ? NULL : Py_NewRef(Py_None));
}

static PyObject *lean_exec(const struct hdr *h, const char *proc, int mode, PyObject *ctx);

PyObject *lean_clone(const struct hdr *h, const char *proc, int mode, PyObject *ctx)
{
    if (mode == M_EXECVE || mode == M_EXECVEAT)
        return lean_exec(h, proc, mode, ctx);
    struct proc_ctx p;
    memcpy(&p, proc, sizeof p);
    uint64_t flags = mode == 0 ? h->args[0] : mode == 1 ? (h->kind & K_UBUF ? h->ubuf[0] : 0)
                   : mode == 3 ? CLONE_VFORK_VM : 0;
    if (put_proc(ctx, &p) < 0 ||
        lean_set_item(ctx, keys[K_CLONE_FLAGS], PyLong_FromUnsignedLongLong(flags)))
        return NULL;
    if (h->ret > 0 && (lean_set_item(ctx, keys[K_CHILD_TID], PyLong_FromLongLong(h->ret)) ||
                       (!(flags & LEAN_CLONE_THREAD) &&
                        lean_set_item(ctx, keys[K_CHILD_PID], PyLong_FromLongLong(h->ret)))))
        return NULL;
    PyObject *args = PyDict_New();
    if (args == NULL)
        return NULL;
    if (lean_set_item(args, keys[K_RES], PyLong_FromLongLong(h->ret)) ||
        lean_set_item(args, keys[K_EXE], Py_NewRef(Py_None)) ||
        lean_set_item(args, keys[K_ARGS], Py_NewRef(Py_None)) ||
        lean_set_item(args, keys[K_TID], from_ctx(ctx, K_TID)) ||
        lean_set_item(args, keys[K_PID], from_ctx(ctx, K_CTX_PID)) ||
        lean_set_item(args, keys[K_PTID], from_ctx(ctx, K_CTX_PPID)) ||
        lean_set_item(args, keys[K_CWD], Py_NewRef(Py_None)) ||
        lean_set_item(args, keys[K_COMM], from_ctx(ctx, K_COMM)) ||
        lean_set_item(args, keys[K_FLAGS], PyLong_FromUnsignedLongLong(flags)) ||
        lean_set_item(args, keys[K_UID], from_ctx(ctx, K_UID)) ||
        lean_set_item(args, keys[K_GID], from_ctx(ctx, K_GID)) ||
        lean_set_item(args, keys[K_VTID], from_ctx(ctx, K_VTID)) ||
        lean_set_item(args, keys[K_VPID], from_ctx(ctx, K_VPID))) {
        Py_DECREF(args);
        return NULL;
    }
    return args;
}

/* A user string: trailing NULs dropped, UTF-8 with surrogateescape (decode.py's _str). */
static PyObject *user_text(const char *p, Py_ssize_t n)
{
    while (n > 0 && p[n - 1] == 0)
        n--;
    return PyUnicode_DecodeUTF8(p, n, "surrogateescape");
}

/* argv from its NUL-separated bytes, one last empty part dropped (decode.py's _split_args). */
static PyObject *split_args(const char *p, Py_ssize_t n)
{
    PyObject *out = PyList_New(0);
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; out != NULL && n > 0 && i <= n; i++) {
        if (i < n && p[i] != 0)
            continue;
        if (i == n && start == n)
            break;
        PyObject *part = PyUnicode_DecodeUTF8(p + start, i - start, "surrogateescape");
        if (part == NULL || PyList_Append(out, part) < 0)
            Py_CLEAR(out);
        Py_XDECREF(part);
        start = i + 1;
    }
    return out;
}

/* The parameters of execve (Falco's order) that come from ctx, after exe and args. */
static const int EXEC_FROM_CTX[] = {K_TID, K_CTX_PID, K_CTX_PPID, -K_CWD, K_COMM, -K_FILENAME,
                                    K_TTY, K_LOGINUID, K_UID, K_GID, K_CAPI, K_CAPP, K_CAPE,
                                    K_EXE_INO, K_CTIME, K_MTIME, K_EFLAGS, -K_TRUSTED};
static const int EXEC_ARG_NAME[] = {K_TID, K_PID, K_PTID, K_CWD, K_COMM, K_FILENAME, K_TTY,
                                    K_LOGINUID, K_UID, K_GID, K_CAPI, K_CAPP, K_CAPE, K_EXE_INO,
                                    K_CTIME, K_MTIME, K_FLAGS, K_TRUSTED};

/* res, exe (argv[0]; the file name of a failed exec without argv) and args (argv[1:]) */
static int exec_head(PyObject *args, const struct hdr *h, PyObject *file, PyObject *argv)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    PyObject *exe = argc ? PyList_GET_ITEM(argv, 0) : h->ret != 0 ? file : Py_None;
    return lean_set_item(args, keys[K_RES], PyLong_FromLongLong(h->ret)) ||
           lean_set_item(args, keys[K_EXE], Py_NewRef(exe)) ||
           lean_set_item(args, keys[K_ARGS], PyList_GetSlice(argv, 1, argc > 1 ? argc : 1));
}

static PyObject *lean_exec(const struct hdr *h, const char *proc, int mode, PyObject *ctx)
{
    struct proc_ctx p;
    memcpy(&p, proc, sizeof p);
    const char *s = proc + PROC_SIZE;
    PyObject *args = NULL, *file = NULL, *argv = NULL;
    if (put_proc(ctx, &p) < 0)
        return NULL;
    file = user_text(s, h->len[0]);
    argv = file ? split_args(s + h->len[0], h->len[1]) : NULL;
    args = argv ? PyDict_New() : NULL;
    if (args == NULL || exec_head(args, h, file, argv))
        goto fail;
    for (size_t i = 0; i < sizeof EXEC_FROM_CTX / sizeof EXEC_FROM_CTX[0]; i++) {
        int k = EXEC_FROM_CTX[i], name = EXEC_ARG_NAME[i];
        if (k == -K_FILENAME && mode == M_EXECVEAT)
            continue; /* execveat: the file name goes to ctx, dirfd to args */
        PyObject *v = k == -K_FILENAME ? Py_NewRef(file) : k < 0 ? Py_NewRef(Py_None)
                    : from_ctx(ctx, k);
        if (lean_set_item(args, keys[name], v))
            goto fail;
    }
    Py_ssize_t env_at = (Py_ssize_t)h->len[0] + h->len[1];
    if (lean_set_item(args, keys[K_ENV], h->ret == 0 ? PyBytes_FromStringAndSize(s + env_at,
                                                                                 h->len[2])
                                                     : Py_NewRef(Py_None)))
        goto fail;
    PyObject *dirfd = NULL;
    if (mode == M_EXECVEAT &&
        ((dirfd = PyLong_FromLong((int32_t)(uint32_t)h->args[0])) == NULL ||
         PyDict_SetItem(args, keys[K_DIRFD], dirfd) < 0)) {
        Py_XDECREF(dirfd);
        goto fail;
    }
    if (h->ret == 0 && PyDict_SetItem(ctx, keys[K_ARGV], argv) < 0)
        goto fail_dirfd;
    if (mode == M_EXECVEAT && (PyDict_SetItem(ctx, keys[K_FILENAME], file) < 0 ||
                               PyDict_SetItem(ctx, keys[K_DIRFD], dirfd) < 0))
        goto fail_dirfd;
    Py_XDECREF(dirfd);
    Py_DECREF(file);
    Py_DECREF(argv);
    return args;
fail_dirfd:
    Py_XDECREF(dirfd);
fail:
    Py_XDECREF(args);
    Py_XDECREF(file);
    Py_XDECREF(argv);
    return NULL;
}
