// Kernel filters derived from the rules (detector/kfilter/plan.py, written into these maps
// by detector/bpf/kfmaps.py): the decision events.c's on_exit asks for before it fills a
// record. Included by events.c after its helpers; not a header of its own.
#ifndef FALCOCTL_PY_KFILTER_H
#define FALCOCTL_PY_KFILTER_H

// Kernel filters (detector/kfilter): the live slot, per slot and syscall the clauses, the path
// trie (keys start with the slot byte; 2 + slot for the reversed paths of suffix atoms), the fds of dropped opens, per syscall seen/dropped.
BPF_ARRAY(kf_slot, u32, 1);
BPF_ARRAY(kf_sys, struct kf_sys, 2 * NR_SYSCALLS);
BPF_LPM_TRIE(kf_trie, struct kf_key, u64, 4096);
BPF_TABLE("lru_hash", u64, struct kf_mark, kf_marks, 65536);
BPF_PERCPU_ARRAY(kf_scratch, struct kf_scratch, 1);
BPF_PERCPU_ARRAY(kf_stats, u64, 2 * NR_SYSCALLS);
BPF_PERCPU_ARRAY(kf_tuple, struct tuple, 1);  // the kernel socket of socket atoms (off the stack)
// The history of sockets whose creating events were dropped (keyed by struct sock *, never
// evicted: when it is full, such events are kept), and its scratch value (off the stack).
BPF_HASH(kf_hist, u64, struct kf_hist, 65536);
BPF_PERCPU_ARRAY(kf_histv, struct kf_hist, 1);
// The paths of dropped directory opens, keyed by struct file * (so dups and forked children
// share them), and its scratch value (off the stack). An LRU: an evicted directory's relative
// opens are kept (userspace then resolves them as it can).
BPF_TABLE("lru_hash", u64, struct kf_dir, kf_dirs, KF_DIRS);
BPF_PERCPU_ARRAY(kf_dirv, struct kf_dir, 1);

// 1 when x == k, without a branch (the verifier walks every byte of the loop below), for
// x ^ k <= 2^63: no atom word has bit 63, and an unused clause needs exactly bit 63.
#define KF_EQ(x, k) ((((u64)((x) ^ (k))) - 1) >> 63)

// Whether the raw path in the trie key (after the slot byte, n bytes with its NUL) is absolute
// and normalised: no "//", "/./", "../", no "/." or "/.." or "/" at its end. A window of the
// last four bytes, compared without branches; the index of the last '/' goes to s->slash.
// The same pass writes the path reversed into `rkey` (after its slot byte; past the path,
// writes go to data[255], outside any key).
// The pass runs `steps` times (a constant: the verifier walks each step once); kf_normal
// picks the shortest of four passes that covers the path, so a path of 20 bytes costs 32
// steps, not 254 (a loop that ends at the path's end is refused by this kernel's verifier:
// "the sequence of 8193 jumps is too complex").
static __always_inline int kf_normal_in(struct kf_scratch *s, int n, const u64 steps)
{
    u8 *p = s->key.data;  // p[0] is the slot byte
    u8 *r = s->rkey.data;
    u64 w = 0, bad = 0, len = n - 1, last = 0;
    for (u64 i = 0; i < steps; i++) {
        u64 live = (i - len) >> 63;  // i < len: no branch, so one path through the loop
        u64 j = i;
        BOUND(j, 255);
        u8 c = p[j + 1];
        u64 ri = ((len - 1 - i) & -live) | (254 & (live - 1));
        BOUND(ri, 255);
        r[ri + 1] = c;
        u64 next = ((w << 8) | c) & 0xffffffffull;
        w = (next & -live) | (w & (live - 1));
        bad |= live & (KF_EQ(w & 0xffff, 0x2f2f) | KF_EQ(w & 0xffffff, 0x2f2e2f) |
                       KF_EQ(w & 0xffffff, 0x2e2e2f));
        u64 sl = live & KF_EQ(c, 0x2f);  // a '/' in the path: the last one so far
        last = (i & -sl) | (last & (sl - 1));
    }
    s->slash = last;
    // the end: "/." or "/.." or a "/" after the first byte
    bad |= KF_EQ(w & 0xffff, 0x2f2e) | KF_EQ(w & 0xffffff, 0x2f2e2e);
    if (n > 2)
        bad |= KF_EQ(w & 0xff, 0x2f);
    return !bad;
}

static __always_inline int kf_normal(struct kf_scratch *s, int n)
{
    if (s->key.data[1] != '/')
        return 0;
    if (n <= 33)  // n counts the NUL: a pass of `steps` covers a path of n - 1 <= steps bytes
        return kf_normal_in(s, n, 32);
    if (n <= 65)
        return kf_normal_in(s, n, 64);
    if (n <= 129)
        return kf_normal_in(s, n, 128);
    return kf_normal_in(s, n, KF_PATH_MAX + 1);
}

// Whether an open file is a directory (its inode's mode).
static __always_inline int kf_file_is_dir(void *file)
{
    void *inode = rd_ptr(file, OFF_FILE_INODE);
    u16 mode = 0;
    if (inode)
        bpf_probe_read_kernel(&mode, 2, inode + OFF_INODE_MODE);
    return (mode & S_IFMT_) == S_IFDIR_;
}

// Whether fd of the current task is a directory.
static __always_inline int kf_is_dir(void *task, s64 fd)
{
    return kf_file_is_dir(fd_file(task, fd));
}

// The kernel's path of the directory open at `fd` (kf_dirs), if it has one: the entry of its
// struct file, made for the same mount and dentry.
static __always_inline struct kf_dir *kf_dir_of(void *task, s64 fd)
{
    void *file = fd_file(task, fd);
    if (!file)
        return 0;
    u64 key = (u64)file;
    struct kf_dir *d = kf_dirs.lookup(&key);
    if (!d || d->dentry != (u64)rd_ptr(file, OFF_FILE_DENTRY) ||
        d->mnt != (u64)rd_ptr(file, OFF_FILE_MNT))
        return 0;
    return d;
}

// The directory path the record of a kept event carries (K_DIR): d's, with its NUL.
static __always_inline void kf_dir_keep(struct kf_scratch *s, struct kf_dir *d)
{
    u64 len = d->len;
    BOUND(len, 255);
    if (len > KF_PATH_MAX)
        return;
    bpf_probe_read_kernel(s->dir, len + 1, d->path);
    s->dirlen = len + 1;
}

// A relative name read at key.data[1] (n bytes with its NUL) joined to its dirfd's path in
// kf_dirs, read again after "dir/"; the joined length with its NUL, or -1 (no path there).
static __always_inline int kf_join(struct kf_scratch *s, void *task, struct buf *b)
{
    struct kf_dir *d = kf_dir_of(task, (s32)b->h.args[0]);  // openat/openat2: dirfd first
    if (!d)
        return -1;
    kf_dir_keep(s, d);  // kept or not evaluable, the record needs it to resolve the name
    u64 at = d->len == 1 ? 0 : d->len;  // the root: "/" + name
    BOUND(at, 255);
    if (at > KF_PATH_MAX)
        return -1;
    if (at)
        bpf_probe_read_kernel(&s->key.data[1], at, d->path);
    u64 j = at + 1;
    BOUND(j, 255);
    s->key.data[j] = '/';
    u8 *name = &s->key.data[1];
    name += j;  // up to data[256 + 255]: inside rkey and pad (sizeof(struct kf_scratch))
    int m = bpf_probe_read_user_str(name, KF_PATH_MAX + 2, (void *)b->h.args[1]);
    if (m == 3 && name[0] == '.' && name[1] == '.') {  // "..": the parent (fts walks up so)
        u64 pl = d->plen;
        BOUND(pl, 255);
        s->key.data[pl + 1] = 0;
        return (int)pl + 1;
    }
    return m > 1 ? (int)at + 1 + m : -1;
}

// The atom word's path bits from the trie; -1 when the path cannot be evaluated (keep).
static __always_inline s64 kf_path_bits(struct buf *b, struct kf_sys *k, u32 slot, void *task)
{
    int z = 0;
    struct kf_scratch *s = kf_scratch.lookup(&z);
    int ai = (int)k->path_arg - 1;
    if (!s || ai < 0 || ai >= NARGS)
        return -1;
    s->dirlen = 0;
    int n = bpf_probe_read_user_str(&s->key.data[1], KF_PATH_MAX + 2, (void *)b->h.args[ai]);
    if (n > 1 && s->key.data[1] != '/' && (k->mode & KF_DIRPATH) && ai == 1)
        n = kf_join(s, task, b);
    if (n <= 1 || n > KF_PATH_MAX + 1 || !kf_normal(s, n))
        return -1;
    s->key.data[0] = slot;
    s->key.prefixlen = 8 * (n + 1);
    u64 *v = kf_trie.lookup(&s->key);
    u64 bits = v ? *v : 0;
    if (k->mode & KF_SUFFIX) {  // the suffix trie: the reversed path, without its NUL
        s->rkey.data[0] = KF_RTRIE + slot;
        s->rkey.prefixlen = 8 * n;
        u64 *rv = kf_trie.lookup(&s->rkey);
        if (rv)
            bits |= *rv;
    }
    return (s64)(bits & 0x7fffffffffffffffull);
}

// Whether the 16 bytes at `a` (an address) masked by a test's mask equal its network.
static __always_inline u64 kf_addr_in(const u8 *a, struct kf_net *t)
{
    const u32 *w = (const u32 *)a;  // 4-byte aligned in struct tuple (after eight u16)
    return KF_EQ(w[0] & t->mask[0], t->net[0]) & KF_EQ(w[1] & t->mask[1], t->net[1]) &
           KF_EQ(w[2] & t->mask[2], t->net[2]) & KF_EQ(w[3] & t->mask[3], t->net[3]);
}

// The socket atoms' bits on the kernel socket of this event; -1 when it is no inet socket
// (the atoms are unknown then). Each test computes every kind's answer and keeps its own
// (no branch: one path through the unrolled loop for the verifier).
static __always_inline s64 kf_sock_bits(struct kf_sys *k, void *task, s64 ret, u64 arg0)
{
    int z = 0;
    struct tuple *tp = kf_tuple.lookup(&z);
    if (!tp)
        return -1;
    __builtin_memset(tp, 0, sizeof(*tp));
    s64 fd = k->tuple_src == KF_TUPLE_RET ? ret : (s64)(s32)arg0;
    if (!fill_tuple(tp, task, fd))
        return -1;
    struct tuple *t = tp;
    u64 fam = t->family, stype = t->type, proto = t->proto;
    // the layer-4 code userspace names (detector/sources/layout.py tuple_info)
    u64 l4 = proto == 6 || proto == 17 || proto == 1 || proto == 255 ? proto
           : proto == 58 ? 1 : stype == 2 ? 17 : 6;
    u64 bits = 0;
#pragma nounroll
    for (int i = 0; i < KF_NETS; i++) {  // a bounded loop: unrolled, it spills past the stack
        struct kf_net *n = &k->net[i];
        u64 kind = n->kind, value = n->value, end = n->end;
        u64 local = end & 1, remote = (end >> 1) & 1;
        u64 m = (KF_EQ(kind, KF_T_FAM) & KF_EQ(fam, value)) |
                (KF_EQ(kind, KF_T_STYPE) & KF_EQ(stype, value)) |
                (KF_EQ(kind, KF_T_L4) & KF_EQ(l4, value)) |
                (KF_EQ(kind, KF_T_PORT) & ((local & KF_EQ(t->lport, value)) |
                                           (remote & KF_EQ(t->rport, value)))) |
                (KF_EQ(kind, KF_T_ADDR) & KF_EQ(fam, value) &
                 ((local & kf_addr_in(t->laddr, n)) | (remote & kf_addr_in(t->raddr, n))));
        u64 bit = n->bit;
        BOUND(bit, 63);
        bits |= m << bit;
    }
    return (s64)(bits & KF_SOCK_MASK);
}

// The clauses of `k` on this event: 1 to keep. Branch-free where it can be (each branch
// before the path loop would multiply the states the verifier walks through it): unused
// flag tests are (0, 0), unused clauses must have bit 63, which no atom word has.
static __always_inline int kf_eval(struct buf *b, struct kf_sys *k, u32 slot, u32 sv, s64 ret,
                                   void *task)
{
    u64 bits = (ret >= 0 ? KF_BIT_OK : 0) | (ret == 0 ? KF_BIT_ZERO : 0);
    u32 mode = k->mode;
    if (mode & KF_PATH) {
        s64 pb = kf_path_bits(b, k, slot, task);
        if (pb < 0)
            return 1;
        bits |= (u64)pb & ~(1ull << 63);
    }
    u32 flags = 0, src = k->flags_src;
    if (src == KF_SRC_CREAT) {
        flags = KF_CREAT_FLAGS;
    } else if (src == KF_SRC_UBUF) {
        int ui = SPEC_ARG(sv, S_UBUF);
        if (ui < 0 || ui >= NARGS || bpf_probe_read_user(&flags, 4, (void *)b->h.args[ui]) != 0)
            return 1;
    } else if (src == KF_SRC_RET) {
        flags = (u32)ret;
    } else if (src >= 1 && src <= NARGS) {
        flags = (u32)b->h.args[(src - 1) & 7];
    }
#pragma unroll
    for (int i = 0; i < KF_FLAGS; i++)
        bits |= KF_EQ(flags & k->fmask[i], k->fval[i]) << (KF_FLAG_BIT0 + i);
    if ((mode & KF_DIR) && ret >= 0 && kf_is_dir(task, ret))
        bits |= KF_BIT_DIR;
    if ((mode & KF_DIRFD) && kf_dir_of(task, (s32)b->h.args[0]))
        bits |= KF_BIT_DIR;  // fcntl: its fd is a directory the kernel has the path of
    u64 known = ~0ull;  // socket atoms without an inet socket: unknown, each literal holds
    if (mode & KF_TUPLE) {
        s64 sb = kf_sock_bits(k, task, ret, b->h.args[0]);
        if (sb < 0)
            known = ~KF_SOCK_MASK;
        else
            bits |= (u64)sb;
    }
    u64 keep = 0;
#pragma unroll
    for (int i = 0; i < KF_CLAUSES; i++) {
        u64 must = k->must[i] & known;
        keep |= KF_EQ(bits & must, must) & KF_EQ(bits & k->nots[i] & known, 0);
    }
    return keep != 0;
}

// A dropped socket event (socket, connect, accept) of the socket at `fd`: its history, the
// tuple now and the role; 0 if it could not be recorded (the event is kept then).
static __always_inline int kf_hist_record(struct kf_sys *k, void *task, s64 fd, s64 ret, u64 arg1)
{
    int z = 0;
    struct kf_hist *v = kf_histv.lookup(&z);
    if (!v)
        return 0;
    __builtin_memset(v, 0, sizeof(*v));
    u64 ino = 0;
    void *sk = fd_sock(task, fd, &ino);
    if (!sk || !fill_tuple(&v->t, task, fd))
        return 0;
    u32 h = HIST_SEEN | (k->hist & (HIST_CLIENT | HIST_SERVER));
    if ((k->hist & HIST_CLIENT) && (ret == 0 || ret == -EINPROGRESS_))
        h |= HIST_CONNECTED;
    if ((k->hist & HIST_BARE) && (arg1 & SOCK_CLOEXEC_))
        h |= HIST_CLOEXEC;
    v->t.hist = h;
    v->ino = ino;
    v->fd = fd;
    u64 key = (u64)sk;
    return kf_hist.update(&key, v) == 0;
}

// A kept connect makes the entry of its fd in userspace: the history no longer applies to an
// fd of that number (fd -1: never HIST_HERE); to other fds unknown to the table it still
// tells what socket() made.
static __always_inline void kf_hist_forget(void *task, s64 fd)
{
    u64 ino = 0;
    u64 key = (u64)fd_sock(task, fd, &ino);
    struct kf_hist *v = key ? kf_hist.lookup(&key) : 0;
    if (v)
        v->fd = -1;
}

// A dup-family record of the socket at `fd`: its tuple becomes the history's, when the socket
// has one (same struct sock and inode), with HIST_HERE when `fd` is the dropped event's fd.
static __always_inline void kf_hist_put(struct tuple *t, void *task, s64 fd)
{
    u64 ino = 0;
    u64 key = (u64)fd_sock(task, fd, &ino);
    struct kf_hist *v = key ? kf_hist.lookup(&key) : 0;
    if (v && v->ino == ino) {
        __builtin_memcpy(t, &v->t, sizeof(*t));
        if (v->fd == fd)
            t->hist |= HIST_HERE;
    }
}

static __always_inline void kf_this(void *task, struct kf_mark *m)
{
    void *leader = rd_ptr(task, OFF_TASK_GROUP_LEADER);
    m->start = 0;
    if (leader)
        bpf_probe_read_kernel(&m->start, 8, leader + OFF_TASK_START_TIME);
    m->mm = (u64)rd_ptr(task, OFF_TASK_MM);
}

// The marks of fds below KF_FD_BITS: a bitmap in the task storage of the process's group
// leader (freed with it, so a reused pid starts with none; threads share it, so bits change
// atomically), stamped with the kf_slot word and the mm it was made under: a new plan's first
// look clears it (its marks may be stale), and so does an exec (a new mm; the exec closed the
// CLOEXEC fds without close events). One storage lookup per mark, close or unmark, where an
// LRU hash took an update, a lookup and a delete and two reads of the process's start time and
// mm. Larger fds are marked in kf_marks, keyed by (tgid, fd) and checked against the start
// time and mm.
#ifndef KF_NO_TASK_STORAGE  // -D by EbpfSource when the kernel refuses task storage here
#define KF_FD_WORDS 16
#define KF_FD_BITS (KF_FD_WORDS * 64)
struct kf_fdbits {
    u64 gen;
    u64 mm;
    u64 w[KF_FD_WORDS];
};
BPF_TASK_STORAGE(kf_fdmarks, struct kf_fdbits);

static __always_inline struct kf_fdbits *kf_bits(u32 gen, int create)
{
    struct task_struct *t = bpf_get_current_task_btf();
    struct task_struct *leader;
    u64 mm;
    // plain loads from the BTF task pointer, whatever TP_BTF says: the verifier types the
    // group leader as a task_struct the helper takes (through rd_ptr it would be a number)
    BTF_LD64(leader, t, OFF_TASK_GROUP_LEADER);
    BTF_LD64(mm, t, OFF_TASK_MM);
    struct kf_fdbits *fb;
    if (create)
        fb = kf_fdmarks.task_storage_get(leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    else
        fb = kf_fdmarks.task_storage_get(leader, 0, 0);
    if (fb && (fb->gen != gen || fb->mm != mm)) {
#pragma unroll
        for (int i = 0; i < KF_FD_WORDS; i++)
            fb->w[i] = 0;
        fb->gen = gen;
        fb->mm = mm;
    }
    return fb;
}
#else  // every fd in kf_marks
#define KF_FD_WORDS 1
#define KF_FD_BITS 0
struct kf_fdbits {
    u64 w[KF_FD_WORDS];
};

static __always_inline struct kf_fdbits *kf_bits(u32 gen, int create)
{
    return 0;
}
#endif

// fd's word in the bitmap; its bit there in *m.
static __always_inline u64 *kf_bit_word(struct kf_fdbits *fb, s64 fd, u64 *m)
{
    u64 i = (u64)fd >> 6;
    BOUND(i, KF_FD_WORDS - 1);
    *m = 1ull << (fd & 63);
    return &fb->w[i];
}

// Clear fd's bit; whether it was set.
static __always_inline int kf_bit_take(struct kf_fdbits *fb, s64 fd)
{
    u64 m;
    u64 *w = kf_bit_word(fb, fd, &m);
    if (!(*w & m))
        return 0;
    return (__sync_fetch_and_and(w, ~m) & m) != 0;
}

static __always_inline void kf_unmark(u32 gen, u64 tgid, s64 fd)
{
    if (fd < 0 || fd > FD_MAX)
        return;
    if (fd < KF_FD_BITS) {
        struct kf_fdbits *fb = kf_bits(gen, 0);
        if (fb)
            kf_bit_take(fb, fd);
        return;
    }
    u64 key = tgid << 32 | (u32)fd;
    kf_marks.delete(&key);
}

// Mark fd (made by a dropped event) so that its close is dropped too. Without room for the
// mark its close comes, which costs only the record.
static __always_inline void kf_mark(u32 gen, u64 tgid, s64 fd, void *task)
{
    if (fd < 0 || fd > FD_MAX)
        return;
    if (fd < KF_FD_BITS) {
        struct kf_fdbits *fb = kf_bits(gen, 1);
        if (fb) {
            u64 m;
            u64 *w = kf_bit_word(fb, fd, &m);  // sets m: a statement of its own
            __sync_fetch_and_or(w, m);
        }
        return;
    }
    u64 key = tgid << 32 | (u32)fd;
    struct kf_mark m = {};
    kf_this(task, &m);
    kf_marks.update(&key, &m);
}

// The two fds a pipe/pipe2/socketpair wrote at its ubuf argument ({-1, -1} if unreadable).
static __always_inline void kf_pair(struct buf *b, u32 sv, s32 *two)
{
    int ui = SPEC_ARG(sv, S_UBUF);
    if (ui < 0 || ui >= NARGS || bpf_probe_read_user(two, 8, (void *)b->h.args[ui]) != 0) {
        two[0] = -1;
        two[1] = -1;
    }
}

// A dropped open of a directory at `fd`: its path (in the scratch key: kf_path_bits ran) goes
// to kf_dirs. 0 when fd is no directory, -1 when the path could not be kept (keep the event).
static __always_inline int kf_dir_record(void *task, s64 fd, u32 mode)
{
    void *file = fd_file(task, fd);
    if (!kf_file_is_dir(file))
        return 0;
    int z = 0;
    struct kf_scratch *s = kf_scratch.lookup(&z);
    struct kf_dir *v = kf_dirv.lookup(&z);
    if (!s || !v || !(mode & KF_PATH))
        return -1;
    u64 n = s->key.prefixlen / 8 - 1;  // the path with its NUL (after the slot byte)
    BOUND(n, 255);
    if (n < 2)
        return -1;
    bpf_probe_read_kernel(v->path, n, &s->key.data[1]);
    v->len = n - 1;
    v->plen = s->slash ? s->slash : 1;  // "/x": its parent is "/"
    v->dentry = (u64)rd_ptr(file, OFF_FILE_DENTRY);
    v->mnt = (u64)rd_ptr(file, OFF_FILE_MNT);
    u64 key = (u64)file;
    return kf_dirs.update(&key, v) == 0 ? 1 : -1;
}

// KF_DIRPATH on a kept event: 2 when its record carries a directory path (K_DIR), else 1.
// fchdir's is its fd's; an open's was found while its path was read (kf_join).
static __always_inline int kf_kept_dir(struct kf_sys *k, void *task, s64 fd)
{
    int z = 0;
    struct kf_scratch *s = kf_scratch.lookup(&z);
    if (!s)
        return 1;
    if (!k->path_arg) {
        s->dirlen = 0;
        struct kf_dir *d = kf_dir_of(task, fd);
        if (d)
            kf_dir_keep(s, d);
    } else if (!(k->mode & KF_ON)) {
        return 1;  // the path was not read: no directory found for it
    }
    return s->dirlen ? 2 : 1;
}

// The kernel filter's decision for one event (args filled): 0 to drop, 1 to keep, 2 to keep
// with a directory path for the record (kf_kept_dir).
static __always_inline int kf_keep(struct buf *b, u32 nr, u32 sv, s64 ret, u64 pid_tgid,
                                   void *task)
{
    int z = 0;
    u32 *slotp = kf_slot.lookup(&z);
    if (!slotp)
        return 1;
    u32 gen = *slotp;  // the slot word: userspace adds one at each switch
    u32 slot = gen & 1;
    u32 idx = slot * NR_SYSCALLS + (nr & (NR_SYSCALLS - 1));
    struct kf_sys *k = kf_sys.lookup(&idx);
    if (!k || !k->mode)
        return 1;
    u32 mode = k->mode;
    u64 tgid = pid_tgid >> 32;
    int keep = (mode & KF_ON) ? kf_eval(b, k, slot, sv, ret, task) : 1;
    if (mode & KF_CLOSE_MARKS) {
        s64 cfd = (s32)b->h.args[0];
        if (cfd >= 0 && cfd < KF_FD_BITS) {
            struct kf_fdbits *fb = kf_bits(gen, 0);
            return !fb || !kf_bit_take(fb, cfd) || keep;
        }
        u64 key = tgid << 32 | (u32)b->h.args[0];
        struct kf_mark *m = kf_marks.lookup(&key);
        if (m) {
            struct kf_mark now = {};
            kf_this(task, &now);
            int valid = m->start == now.start && m->mm == now.mm;
            kf_marks.delete(&key);
            return keep || !valid;
        }
        return 1;
    }
    if (mode & KF_SOCK_HIST) {
        s64 fd = k->tuple_src == KF_TUPLE_RET ? ret : (s64)(s32)b->h.args[0];
        if (!keep)
            keep = !kf_hist_record(k, task, fd, ret, b->h.args[1]);
        else if (k->hist & HIST_CLIENT)
            kf_hist_forget(task, fd);
    }
    s32 two[2] = {-1, -1};
    if ((mode & KF_UNMARK_UBUF) && ret == 0)
        kf_pair(b, sv, two);
    if (!keep && (mode & KF_DIRPATH) && ret >= 0)
        keep = kf_dir_record(task, ret, mode) < 0;  // a directory without its path: keep
    if (!keep) {
        u32 cmd = (u32)b->h.args[1];  // fcntl: only its F_DUPFD commands make an fd
        if ((mode & KF_DIRFD) && cmd != F_DUPFD_ && cmd != F_DUPFD_CLOEXEC_)
            return 0;
        if ((mode & KF_MARK_DROPS) && ret >= 0) {
            if (mode & KF_UNMARK_UBUF) {
                kf_mark(gen, tgid, two[0], task);
                kf_mark(gen, tgid, two[1], task);
            } else {
                kf_mark(gen, tgid, ret, task);
            }
        }
        return 0;
    }
    if (mode & KF_UNMARK_RET)
        kf_unmark(gen, tgid, ret);
    if (mode & KF_UNMARK_ARG0)
        kf_unmark(gen, tgid, (s32)b->h.args[0]);
    kf_unmark(gen, tgid, two[0]);
    kf_unmark(gen, tgid, two[1]);
    return (mode & KF_DIRPATH) ? kf_kept_dir(k, task, (s32)b->h.args[0]) : 1;
}

static __always_inline void kf_count(u32 idx)
{
    u64 *c = kf_stats.lookup(&idx);
    if (c)
        *c += 1;
}

#endif
