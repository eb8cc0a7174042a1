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

// 1 when x == k, without a branch (the verifier walks every byte of the loop below), for
// x ^ k <= 2^63: no atom word has bit 63, and an unused clause needs exactly bit 63.
#define KF_EQ(x, k) ((((u64)((x) ^ (k))) - 1) >> 63)

// Whether the raw path in the trie key (after the slot byte, n bytes with its NUL) is absolute
// and normalised: no "//", "/./", "../", no "/." or "/.." or "/" at its end. A window of the
// last four bytes, compared without branches. The same pass writes the path reversed into
// `rkey` (after its slot byte; past the path, writes go to data[255], outside any key).
static __always_inline int kf_normal(struct kf_scratch *s, int n)
{
    u8 *p = s->key.data;  // p[0] is the slot byte
    u8 *r = s->rkey.data;
    if (p[1] != '/')
        return 0;
    u64 w = 0, bad = 0, len = n - 1;
    for (u64 i = 0; i < KF_PATH_MAX + 1; i++) {
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
    }
    // the end: "/." or "/.." or a "/" after the first byte
    bad |= KF_EQ(w & 0xffff, 0x2f2e) | KF_EQ(w & 0xffffff, 0x2f2e2e);
    if (n > 2)
        bad |= KF_EQ(w & 0xff, 0x2f);
    return !bad;
}

// Whether fd of the current task is a directory (its inode's mode).
static __always_inline int kf_is_dir(void *task, s64 fd)
{
    void *inode = rd_ptr(fd_file(task, fd), OFF_FILE_INODE);
    u16 mode = 0;
    if (inode)
        bpf_probe_read_kernel(&mode, 2, inode + OFF_INODE_MODE);
    return (mode & S_IFMT_) == S_IFDIR_;
}

// The atom word's path bits from the trie; -1 when the path cannot be evaluated (keep).
static __always_inline s64 kf_path_bits(struct buf *b, struct kf_sys *k, u32 slot)
{
    int z = 0;
    struct kf_scratch *s = kf_scratch.lookup(&z);
    int ai = (int)k->path_arg - 1;
    if (!s || ai < 0 || ai >= NARGS)
        return -1;
    int n = bpf_probe_read_user_str(&s->key.data[1], KF_PATH_MAX + 2, (void *)b->h.args[ai]);
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

// The clauses of `k` on this event: 1 to keep. Branch-free where it can be (each branch
// before the path loop would multiply the states the verifier walks through it): unused
// flag tests are (0, 0), unused clauses must have bit 63, which no atom word has.
static __always_inline int kf_eval(struct buf *b, struct kf_sys *k, u32 slot, u32 sv, s64 ret,
                                   void *task)
{
    u64 bits = ret >= 0 ? KF_BIT_OK : 0;
    u32 mode = k->mode;
    if (mode & KF_PATH) {
        s64 pb = kf_path_bits(b, k, slot);
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
    } else if (src >= 1 && src <= NARGS) {
        flags = (u32)b->h.args[(src - 1) & 7];
    }
#pragma unroll
    for (int i = 0; i < KF_FLAGS; i++)
        bits |= KF_EQ(flags & k->fmask[i], k->fval[i]) << (KF_FLAG_BIT0 + i);
    if ((mode & KF_DIR) && ret >= 0 && kf_is_dir(task, ret))
        bits |= KF_BIT_DIR;
    u64 keep = 0;
#pragma unroll
    for (int i = 0; i < KF_CLAUSES; i++)
        keep |= KF_EQ(bits & k->must[i], k->must[i]) & KF_EQ(bits & k->nots[i], 0);
    return keep != 0;
}

static __always_inline void kf_this(void *task, struct kf_mark *m)
{
    void *leader = rd_ptr(task, OFF_TASK_GROUP_LEADER);
    m->start = 0;
    if (leader)
        bpf_probe_read_kernel(&m->start, 8, leader + OFF_TASK_START_TIME);
    m->mm = (u64)rd_ptr(task, OFF_TASK_MM);
}

static __always_inline void kf_unmark(u64 tgid, s64 fd)
{
    if (fd < 0 || fd > FD_MAX)
        return;
    u64 key = tgid << 32 | (u32)fd;
    kf_marks.delete(&key);
}

static __always_inline void kf_mark(u64 tgid, s64 fd, void *task)
{
    if (fd < 0 || fd > FD_MAX)
        return;
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

// The kernel filter's decision for one event (args filled): 1 to keep.
static __always_inline int kf_keep(struct buf *b, u32 nr, u32 sv, s64 ret, u64 pid_tgid,
                                   void *task)
{
    int z = 0;
    u32 *slotp = kf_slot.lookup(&z);
    if (!slotp)
        return 1;
    u32 slot = *slotp & 1;
    u32 idx = slot * NR_SYSCALLS + (nr & (NR_SYSCALLS - 1));
    struct kf_sys *k = kf_sys.lookup(&idx);
    if (!k || !k->mode)
        return 1;
    u32 mode = k->mode;
    u64 tgid = pid_tgid >> 32;
    int keep = (mode & KF_ON) ? kf_eval(b, k, slot, sv, ret, task) : 1;
    if (mode & KF_CLOSE_MARKS) {
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
    s32 two[2] = {-1, -1};
    if ((mode & KF_UNMARK_UBUF) && ret == 0)
        kf_pair(b, sv, two);
    if (!keep) {
        if ((mode & KF_MARK_DROPS) && ret >= 0) {
            if (mode & KF_UNMARK_UBUF) {
                kf_mark(tgid, two[0], task);
                kf_mark(tgid, two[1], task);
            } else {
                kf_mark(tgid, ret, task);
            }
        }
        return 0;
    }
    if (mode & KF_UNMARK_RET)
        kf_unmark(tgid, ret);
    kf_unmark(tgid, two[0]);
    kf_unmark(tgid, two[1]);
    return 1;
}

static __always_inline void kf_count(u32 idx)
{
    u64 *c = kf_stats.lookup(&idx);
    if (c)
        *c += 1;
}

#endif
