// Records the BPF programs of events.c send to userspace, the bits of the `spec` map, and the
// named constants the programs use. Kept apart so that a plain C compiler can check them
// against detector/sources/decode.py and detector/sources/syscalls.py.
#ifndef FALCOCTL_PY_EVENTS_H
#define FALCOCTL_PY_EVENTS_H

// A spec word (one u32 per syscall number in the `spec` map): 3-bit argument indexes + 1
// (0 = none), then flags.
#define SPEC_ARG_BITS 3
#define SPEC_ARG_MASK ((1u << SPEC_ARG_BITS) - 1)
#define SPEC_ARG(spec, shift) ((((spec) >> (shift)) & SPEC_ARG_MASK) - 1)
#define S_STR0 0
#define S_STR1 3
#define S_STR2 6
#define S_SA 9
#define S_SALEN 12
#define F_SALEN_PTR (1u << 15)
#define F_MSGHDR (1u << 16)
#define S_UBUF 17
#define F_TUPLE_ARG0 (1u << 20)
#define F_TUPLE_RET (1u << 21)
#define F_PROC (1u << 22)
#define F_EXEC (1u << 23)
#define F_RAW_HOOK (1u << 24)  // no tracepoint of its own: the raw sys_exit hook takes it
#define F_ENABLED (1u << 25)
#define S_DROPCAT 26  // 3 bits: Falco's n_drops_buffer_* category of the syscall
#define F_HIST (1u << 29)  // dup family: the tuple is the socket's history (kf_hist), if any
#define DROPCAT_BITS 3
#define N_DROPCATS (1 << DROPCAT_BITS)
#define NARGS 6  // syscall arguments in registers

#define NR_SYSCALLS 512  // entries of the spec map: x86-64 syscall numbers are below this
#define NR_PROCEXIT 1001
#define SPEC_PROCEXIT 489  // spec slot of procexit (no syscall has this number)

// Kernel counters (a per-CPU array): records offered, records dropped (ring buffer full),
// then drops by category.
#define CNT_OFFERED 0
#define CNT_DROPS 1
#define CNT_DROPCAT 2
#define N_COUNTERS (CNT_DROPCAT + N_DROPCATS)

// Sizes of what a record carries, and the masks that bound offsets for the verifier.
#define STR_MAX 256           // one path or name
#define ARGS_MAX 1024         // argv or the environment of a new image
#define ARGS_MASK (ARGS_MAX - 1)
#define SA_MAX 112            // a sockaddr (sockaddr_un is the largest, 110 bytes)
#define SA_MASK 127
#define BUF_SIZE 8192         // the variable part of a record
#define OFF_MASK (BUF_SIZE / 2 - 1)  // offsets of the variable part: each write fits after it
#define FD_MAX 1048576        // fds above this are not looked up in the fd table
#define PID_LEVEL_MASK 31     // pid namespace levels (the kernel allows 32)
#define CG_LEVELS 4           // cgroup v2 path components kept, innermost first
#define CG_NAME_MAX 96
#define EXE_DNAME_MAX 32
#define COMM_LEN 16

// Kernel facts the programs compare against.
#define OVERLAYFS_SUPER_MAGIC 0x794c7630  // sb->s_magic of overlayfs
#define FAM_INET 2                        // AF_INET
#define FAM_INET6 10                      // AF_INET6
#define STATUS_TS_COMPAT 0x0002           // thread_info.status: a 32-bit (ia32) syscall
#define EXE_UPPER_LAYER 1                 // proc_ctx.exe_flags bits
#define EXE_OVERLAY 2

// Kernel filters (detector/kfilter/plan.py): per slot and syscall a `struct kf_sys`; the
// atom word's bits; mode bits. Two slots, the `kf_slot` word says which one is live.
#define KF_CLAUSES 16
#define KF_FLAGS 8
#define KF_BIT_OK 1ull
#define KF_FLAG_BIT0 1
#define KF_BIT_DIR (1ull << 9)
#define KF_BIT_ZERO (1ull << 62)  // the result is 0 (a clone's child side); path bits end at 61
#define KF_PATH_MAX 253       // longer paths are not evaluated (slot byte + path + NUL <= 256)
#define KF_KEY_DATA 256       // the trie's key data: the slot byte, then the path and its NUL
#define KF_ON 1               // the clauses decide (else: keep every event)
#define KF_PATH 2             // the clauses use path atoms
#define KF_DIR 4              // the clauses use the directory atom
#define KF_MARK_DROPS 8       // a dropped event marks the fd(s) it made
#define KF_CLOSE_MARKS 16     // close: a marked fd's close is dropped
#define KF_UNMARK_RET 32      // a kept event unmarks the fd it returned
#define KF_UNMARK_UBUF 64     // its two fds are at its ubuf argument: unmarked if kept, marked
                              // if dropped with KF_MARK_DROPS (pipe, pipe2)
#define KF_SUFFIX 128         // the clauses use suffix atoms: the reversed path is looked up
#define KF_TUPLE 256          // the clauses use socket atoms: tests of the kernel socket (tuple)
#define KF_UNMARK_ARG0 512    // a kept event unmarks the fd of its first argument (connect,
                              // bind, listen: they make an entry for it)
#define KF_SOCK_HIST 1024     // a dropped socket event records its socket's history (kf_hist);
                              // a kept connect takes its fd off it (its record makes the entry)
#define KF_DIRPATH 2048       // opens: a relative path is read against the kernel's paths of
                              // dropped directory opens (kf_dirs) of its dirfd; a dropped
                              // directory open records its path there (kept if it cannot);
                              // a kept event whose dirfd (opens) or fd (fchdir) has a path
                              // there carries it (K_DIR)
#define KF_DIRFD 4096         // fcntl: KF_BIT_DIR says its fd has a path in kf_dirs; dropped,
                              // an F_DUPFD/F_DUPFD_CLOEXEC marks the fd it made
#define F_DUPFD_ 0
#define F_DUPFD_CLOEXEC_ 1030
#define AT_FDCWD_ (-100)
#define KF_DIRS 8192          // directories whose path the kernel keeps (an LRU hash)
#define KF_NETS 24            // socket tests per syscall
#define KF_SOCK_BIT0 10       // their atom bits (socket events have no path atoms)
#define KF_SOCK_MASK (0xffffull << KF_SOCK_BIT0)  // unknown when there is no inet socket
#define KF_T_FAM 1            // socket test kinds: family, type, layer 4, address, port
#define KF_T_STYPE 2
#define KF_T_L4 3
#define KF_T_ADDR 4
#define KF_T_PORT 5
#define KF_TUPLE_ARG0 1       // tuple_src: the socket is the fd of the first argument
#define KF_TUPLE_RET 2        // ... or the result
#define KF_SRC_RET 9          // flags_src: the result (evt.res = ENAME)
#define KF_RTRIE 2            // slot byte of the reversed-path (suffix) keys: 2 + slot
#define KF_SRC_UBUF 7         // flags_src: 1 + argument index, or these
#define KF_SRC_CREAT 8
#define KF_CREAT_FLAGS 01101  // O_WRONLY|O_CREAT|O_TRUNC
#define S_IFMT_ 0170000
#define S_IFDIR_ 0040000

// One socket test: kind KF_T_*; value: the family, type, layer-4 code or port; end: 1 local,
// 2 remote, 3 either; an address test holds when (address & mask) == net on a socket of family
// `value` (the address's bytes as four native u32 words); it sets atom bit `bit`.
struct kf_net {
    u32 mask[4];
    u32 net[4];
    u16 value;
    u8 kind;
    u8 end;
    u32 bit;
};

struct kf_sys {
    u64 must[KF_CLAUSES];
    u64 nots[KF_CLAUSES];
    u32 fmask[KF_FLAGS];
    u32 fval[KF_FLAGS];
    u32 nclauses;
    u32 mode;
    u32 nflags;
    u32 flags_src;
    u32 path_arg;    // 1 + argument index of the path
    u32 tuple_src;   // KF_TUPLE_ARG0 or KF_TUPLE_RET
    u32 hist;        // KF_SOCK_HIST: the HIST_* role bits this syscall records
    struct kf_net net[KF_NETS];
};

// struct tuple's `hist` bits: the socket's creating events that the kernel dropped.
#define HIST_SEEN 1       // a history (the tuple is its snapshot, not the socket's now)
#define HIST_CLIENT 2     // a dropped connect (the last event that set the ends)
#define HIST_SERVER 4     // a dropped accept
#define HIST_CONNECTED 8  // the connect returned 0 or -EINPROGRESS
#define HIST_CLOEXEC 16   // a dropped socket() with SOCK_CLOEXEC
#define HIST_BARE 32      // kf_sys.hist of socket(): read SOCK_CLOEXEC from its type argument
#define HIST_HERE 64      // the dup's old fd has the number of the dropped event's fd
#define SOCK_CLOEXEC_ 02000000
#define EINPROGRESS_ 115

struct kf_key {
    u32 prefixlen;
    u8 data[KF_KEY_DATA];
};

struct kf_scratch {
    struct kf_key key;   // a relative path joined to its directory's spills into rkey and pad
    struct kf_key rkey;  // the reversed path (suffix atoms), after its slot byte
    u8 pad[8];       // reads of data[i + 3] and the dummy write at data[256] stay inside
    u32 dirlen;      // the directory path of a kept event (K_DIR), with its NUL; 0: none
    u32 slash;       // kf_normal: the index of the path's last '/' (its parent's length)
    u8 dir[KF_KEY_DATA];
};

// The path of a dropped directory open (kf_dirs, keyed by its struct file *), with the
// file's mount and dentry, so that a freed and reused struct file is never taken for it.
struct kf_dir {
    u64 mnt;
    u64 dentry;
    u32 len;         // without the NUL
    u32 plen;        // the length of its parent's path (a name ".." opened relative to it)
    u8 path[KF_KEY_DATA];
};

struct kf_mark {
    u64 start;       // the process's start time
    u64 mm;          // its mm (an exec changes it)
};

// kind bits of a record
#define K_PROC 1
#define K_TUPLE 2
#define K_UBUF 4
#define K_DIR 8      // str1 is the directory path of the event's dirfd or fd (KF_DIRPATH)
#define K_VFORK 16   // a vfork child that has not exec'd (its caller waits): the process context
                     // rides on its kept events, as its dropped clone return would have told it

struct hdr {
    u64 ts;          // bpf_ktime_get_boot_ns
    u64 pid_tgid;
    s64 ret;
    u64 args[NARGS];
    u64 uid_gid;
    u32 nr;
    u32 ppid;        // task->real_parent->tgid
    u16 len[4];      // str0, str1, str2, sockaddr
    u16 kind;
    u16 size;
    u32 cpu;
    char comm[COMM_LEN];
    u64 ubuf[3];
};

struct proc_ctx {
    u32 loginuid;
    u32 sessionid;
    u32 tty_major;
    u32 tty_minor;   // minor_start + index; tty_major 0 = no controlling terminal
    u32 vpid;
    u32 vtid_level;
    u32 euid;
    u32 egid;
    u64 cap_inh;
    u64 cap_prm;
    u64 cap_eff;
    u64 exe_ino;
    s64 exe_ctime;   // seconds
    s64 exe_mtime;
    u32 exe_dev;
    u32 exe_flags;   // EXE_UPPER_LAYER, EXE_OVERLAY
    u64 cgroup_id;
    u64 start_ts;    // task->start_boottime (bpf_ktime_get_boot_ns's clock); 0: unknown
    char exe_dname[EXE_DNAME_MAX];
    char cgroup[CG_LEVELS][CG_NAME_MAX];  // the cgroup v2 path's last components, innermost first
};

struct tuple {
    u16 family;
    u16 type;
    u16 proto;
    u16 lport;       // host order
    u16 rport;       // host order
    u16 hist;        // HIST_* (dup family, from kf_hist), else 0
    u32 ino;         // the socket's inode number (its low 32 bits)
    u8 laddr[16];
    u8 raddr[16];
};

// A socket's history (kf_hist, keyed by its struct sock *): its inode, so that a reused pointer
// is never taken for it, and the tuple when the dropped event ran.
struct kf_hist {
    u64 ino;
    struct tuple t;
    s64 fd;          // the fd of the dropped event (a dup of another fd of the socket copies the
                     // table entry that fd had: the dropped event did not change it)
};

// What the masks promise the verifier, checked when the program is compiled.
_Static_assert((BUF_SIZE & (BUF_SIZE - 1)) == 0, "BUF_SIZE is a power of two");
_Static_assert((ARGS_MAX & ARGS_MASK) == 0, "ARGS_MAX is a power of two");
_Static_assert(OFF_MASK + ARGS_MAX <= BUF_SIZE, "the longest write fits after any offset");
_Static_assert(OFF_MASK + STR_MAX <= BUF_SIZE, "a string fits after any offset");
_Static_assert(SA_MAX <= SA_MASK && ((SA_MASK + 1) & SA_MASK) == 0, "SA_MASK bounds SA_MAX");
_Static_assert(OFF_MASK + SA_MASK + 1 <= BUF_SIZE, "a sockaddr fits after any offset");
_Static_assert(sizeof(struct proc_ctx) + sizeof(struct tuple) <= OFF_MASK,
               "process context and tuple leave room for the strings");
_Static_assert(sizeof(struct tuple) == 48, "layout.py's TUPLE");
_Static_assert(S_DROPCAT + DROPCAT_BITS <= 29, "the drop category fits the spec word");
_Static_assert(S_UBUF + SPEC_ARG_BITS <= 20, "the ubuf index ends below F_TUPLE_ARG0");
_Static_assert(NARGS < (1 << SPEC_ARG_BITS), "an argument index + 1 fits its bits");
_Static_assert(SPEC_PROCEXIT < NR_SYSCALLS, "procexit has a spec slot");
_Static_assert(PID_LEVEL_MASK == 31, "the kernel's MAX_PID_NS_LEVEL is 32");

#endif
