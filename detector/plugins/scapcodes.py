"""libscap's event codes for the syscall events the detector encodes for native plugins.

Facts from libs (``driver/ppm_events_public.h``, ``driver/event_table.c``): the current (not
``EF_OLD_VERSION``) exit event of each name in :data:`EXIT_PARAMS`, ``procexit``'s event (an
enter event libs sends alone) and its parameters, and the ``PPM_O_*``/``PPM_CL_*`` bits the
drivers put in ``flags`` parameters instead of the kernel's. No syscall event has libs'
``EF_LARGE_PAYLOAD`` flag: their parameter lengths are u16.
"""

GENERIC_X = 1  # PPME_GENERIC_X: a syscall the event table has no event of its own for
PROCEXIT = 186  # PPME_PROCEXIT_1_E
PROCEXIT_PARAMS: tuple[tuple[str, str, str], ...] = (
    ("status", "ERRNO", ""), ("ret", "ERRNO", ""), ("sig", "SIGTYPE", ""),
    ("core", "UINT8", ""), ("reaper_tid", "PID", ""))

# Event name -> code of its current exit event (PPME_*_X).
EXIT_CODES: dict[str, int] = {
    'accept': 247, 'accept4': 389, 'access': 265, 'bind': 21, 'bpf': 369, 'brk': 159,
    'capset': 353, 'chdir': 95, 'chmod': 315, 'chown': 379, 'chroot': 267, 'clone': 223,
    'clone3': 335, 'close': 5, 'close_range': 451, 'connect': 23, 'copy_file_range': 333,
    'creat': 59, 'delete_module': 425, 'drop': 149, 'dup': 367, 'dup2': 363, 'dup3': 365,
    'epoll_create': 375, 'epoll_create1': 377, 'epoll_wait': 79, 'eventfd': 63, 'eventfd2': 397,
    'execve': 293, 'execveat': 331, 'fchdir': 97, 'fchmod': 317, 'fchmodat': 313, 'fchown': 383,
    'fchownat': 385, 'fcntl': 151, 'finit_module': 413, 'flock': 243, 'fork': 225,
    'fsconfig': 373, 'fstat': 71, 'fstat64': 77, 'futex': 65, 'getcwd': 93, 'getdents': 237,
    'getdents64': 239, 'getegid': 209, 'geteuid': 205, 'getgid': 207, 'getpeername': 41,
    'getresgid': 213, 'getresuid': 211, 'getrlimit': 141, 'getsockname': 39, 'getsockopt': 47,
    'getuid': 203, 'init_module': 411, 'inotify_init': 139, 'inotify_init1': 395,
    'io_uring_enter': 341, 'io_uring_register': 343, 'io_uring_setup': 339, 'ioctl': 171,
    'keyctl': 453, 'kill': 129, 'lchown': 381, 'link': 309, 'linkat': 311, 'listen': 25,
    'llseek': 89, 'lseek': 87, 'lstat': 69, 'lstat64': 75, 'memfd_create': 405, 'mkdir': 277,
    'mkdirat': 305, 'mknod': 415, 'mknodat': 417, 'mlock': 345, 'mlock2': 371, 'mlockall': 349,
    'mmap': 161, 'mmap2': 163, 'mount': 257, 'mprotect': 329, 'munlock': 347, 'munlockall': 351,
    'munmap': 165, 'nanosleep': 135, 'newfstatat': 419, 'open': 3, 'open_by_handle_at': 337,
    'openat': 307, 'openat2': 327, 'pidfd_getfd': 407, 'pidfd_open': 409, 'pipe': 61,
    'pipe2': 393, 'poll': 81, 'ppoll': 255, 'prctl': 401, 'pread': 113, 'preadv': 121,
    'prlimit': 145, 'process_vm_readv': 421, 'process_vm_writev': 423, 'ptrace': 169,
    'pwrite': 115, 'pwritev': 123, 'quotactl': 191, 'read': 7, 'readv': 117, 'recv': 33,
    'recvfrom': 35, 'recvmmsg': 55, 'recvmsg': 53, 'rename': 175, 'renameat': 177,
    'renameat2': 319, 'rmdir': 279, 'seccomp': 299, 'select': 83, 'semctl': 253, 'semget': 263,
    'semop': 251, 'send': 29, 'sendfile': 189, 'sendmmsg': 51, 'sendmsg': 49, 'sendto': 31,
    'setgid': 201, 'setns': 241, 'setpgid': 295, 'setregid': 429, 'setresgid': 195,
    'setresuid': 193, 'setreuid': 427, 'setrlimit': 143, 'setsid': 275, 'setsockopt': 45,
    'setuid': 199, 'shutdown': 37, 'signalfd': 127, 'signalfd4': 399, 'socket': 19,
    'socketpair': 43, 'splice': 167, 'stat': 67, 'stat64': 73, 'symlink': 179, 'symlinkat': 181,
    'syscall': 1, 'tgkill': 133, 'timerfd_create': 137, 'tkill': 131, 'umount': 387,
    'umount2': 391, 'unlink': 301, 'unlinkat': 303, 'unshare': 285, 'userfaultfd': 321,
    'vfork': 227, 'write': 9, 'writev': 119,
}

# Kernel open flags (x86_64 values, as the rest of the detector) -> PPM_O_* (libs
# ``open_flags_to_scap``): any bit of the kernel mask sets the PPM bit, as libs tests them (so
# O_SYNC's bits set PPM_O_DSYNC too, and O_DIRECTORY's set PPM_O_TMPFILE).
O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT = 0o3, 0o1, 0o2, 0o100
PPM_O_RDONLY, PPM_O_WRONLY, PPM_O_RDWR = 1 << 0, 1 << 1, 3
OPEN_FLAG_BITS: tuple[tuple[int, int], ...] = (
    (O_CREAT, 1 << 2), (0o20200000, 1 << 13), (0o2000, 1 << 3), (0o10000, 1 << 4),
    (0o200, 1 << 5), (0o4000, 1 << 6), (0o4010000, 1 << 7), (0o1000, 1 << 8),
    (0o40000, 1 << 9), (0o200000, 1 << 10), (0o100000, 1 << 11), (0o2000000, 1 << 12))
O_TMPFILE = 0o20200000
# Flags of descriptors other than open's (dup3, pipe2, eventfd2, ...): only these two carry over.
FD_FLAG_BITS: tuple[tuple[int, int], ...] = ((0o2000000, 1 << 12), (0o4000, 1 << 6))

# Kernel CLONE_* -> PPM_CL_* (libs ``clone_flags_to_scap``).
CLONE_NEWPID, PPM_CL_CHILD_IN_PIDNS = 0x20000000, 1 << 29
CLONE_FLAG_BITS: tuple[tuple[int, int], ...] = (
    (0x400, 1 << 0), (0x200, 1 << 1), (0x80000000, 1 << 2), (0x08000000, 1 << 3),
    (0x40000000, 1 << 4), (0x00020000, 1 << 5), (0x20000000, 1 << 6), (0x04000000, 1 << 7),
    (0x00100000, 1 << 9), (0x8000, 1 << 8), (0x2000, 1 << 10), (0x800, 1 << 11),
    (0x40000, 1 << 12), (0x10000, 1 << 13), (0x00800000, 1 << 14), (0x100, 1 << 15),
    (0x10000000, 1 << 20), (0x00200000, 1 << 23), (0x01000000, 1 << 24), (0x80000, 1 << 25),
    (0x4000, 1 << 27), (0x02000000, 1 << 28))
