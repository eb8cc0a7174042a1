"""A sink run by a child process fed through a pipe: it never shares the detector's GIL.

Frames on the pipe: a 4-byte little-endian length of the line, one byte of syslog severity
(0..7), then the UTF-8 line. The event loop checks the pipe's free space before writing (its
size, F_GETPIPE_SZ, minus what it holds: bytes written minus bytes the child has read) and
drops (and counts) a frame that does not fit, so it never blocks; the rare frame the kernel
takes in part (its page slots are full) is finished before the next one, or that one drops.
Closing the pipe is "stop": the child delivers what is left and exits; it also exits at once
when the detector process dies. The child's counters (sent, errors, bytes read) and the
reopen requests live in a small shared memory file (a memfd mapped by both processes), so
``stats()`` and ``reopen()`` need no round trip and no syscall.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import logging
import mmap
import os
import select
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from detector.outputs.base import Sink, SinkStats
from detector.outputs.format import priority_level

log = logging.getLogger("detector.outputs")

HEAD = struct.Struct("<IB")  # line length, syslog severity
NUDGE_LEVEL = 0xFF  # a frame of this level carries no alert: "look at REOPEN" (the child
NUDGE = HEAD.pack(0, NUDGE_LEVEL)  # blocks on the pipe with no timer, so a request wakes it)
# The shared memory: four native u64 words, each read and written in one 8-byte access
# through ``words`` (a struct "<Q" store goes byte by byte: the other process could read a
# half-written count, and a "consumed" seen low drops an alert that fits).
SENT, ERRORS = 0, 1  # written by the child
CONSUMED = 2  # bytes the child has read off the pipe: the parent's free space
REOPEN = 3  # reopen requests: written by the parent
SHARED_SIZE = 4 * 8
PIPE_SIZE = 1 << 20

# The event loop's write goes through ctypes.PyDLL, which keeps the GIL: the pipe is
# non-blocking and the call takes a microsecond, while os.write releases the GIL, and every
# release lets a busy thread (the file output's) take it: the convoy effect again.
_libc = ctypes.PyDLL(None, use_errno=True)
_write = _libc.write
_write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
_write.restype = ctypes.c_ssize_t


def words(shared: mmap.mmap) -> memoryview:
    """The shared memory as u64 words (SENT, ERRORS, CONSUMED, REOPEN), one access each."""
    return memoryview(shared).cast("Q")


def _write_nb(fd: int, data: bytes) -> int:
    """write(2) on the non-blocking pipe, keeping the GIL: bytes written, or -errno."""
    n = int(_write(fd, data, len(data)))
    return n if n >= 0 else -ctypes.get_errno()


def _grow_pipe(fd: int, want: int) -> int:
    """Raise the pipe's size to ``want`` or the most the kernel allows; returns the size."""
    for size in (want, _max_pipe_size()):
        if size <= 0:
            continue
        try:
            return int(fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size))
        except OSError:
            continue
    return int(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))


def _max_pipe_size() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size", encoding="ascii") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 0


class ProcessSink:
    """The detector's end of a child-process sink: ``put`` never blocks and counts drops."""

    def __init__(self, sink: Sink, *, pipe_size: int = PIPE_SIZE) -> None:
        self.sink = sink
        self._lock = threading.Lock()  # alerts may come from several threads (reloader, plugins)
        self._accepted = 0
        self._dropped = 0
        self._pending = b""  # the tail of a frame the kernel took only in part
        self._levels: dict[Any, int] = {}
        self._reopens = 0
        self._warned_dead = False
        self._closed = False
        self._full_at = -1  # the child's read count when a write last found the pipe full
        self._written = 0  # bytes written to the pipe; minus CONSUMED: what it holds (FIONREAD)
        shared_fd = os.memfd_create(f"falco-output-{sink.name}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(shared_fd, SHARED_SIZE)
            self._shared = words(mmap.mmap(shared_fd, SHARED_SIZE))
            rfd, wfd = os.pipe()  # both ends close-on-exec; the child gets the read end only
            try:
                self.pipe_size = _grow_pipe(wfd, pipe_size)
                os.set_blocking(wfd, False)
                spec = {"sink": sink.name, "settings": sink.settings(), "parent": os.getpid(),
                        "log_level": log.getEffectiveLevel()}
                # the settings go through stdin, not argv: a URL may hold credentials
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "detector.outputs.child", str(rfd), str(shared_fd)],
                    pass_fds=(rfd, shared_fd), stdin=subprocess.PIPE)
                assert self._proc.stdin is not None
                with self._proc.stdin:
                    self._proc.stdin.write(json.dumps(spec).encode())
            except BaseException:
                os.close(wfd)
                raise
            finally:
                os.close(rfd)
        finally:
            os.close(shared_fd)
        self._fd = wfd

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _level(self, alert: Any) -> int:
        prio = getattr(alert, "priority", None)
        try:
            return self._levels[prio]
        except KeyError:
            level = self._levels[prio] = priority_level(prio) if prio is not None else 7
            return level
        except TypeError:  # unhashable
            return priority_level(prio)

    def put(self, line: str, alert: Any) -> bool:
        data = line.encode()
        frame = HEAD.pack(len(data), self._level(alert)) + data
        with self._lock:
            consumed = self._shared[CONSUMED]
            # FIONREAD without a syscall: the child publishes what it read right after each
            # read, so this is exact or (for a few microseconds) slightly high. The kernel
            # keeps a pipe in page slots, which small writes fill only in part: once a write
            # found no slot, no write is tried before the child has read again.
            if self._fd < 0 or consumed == self._full_at or \
                    len(frame) > self.pipe_size - (self._written - consumed):
                self._dropped += 1
                return False
            if self._pending and not self._write_pending(consumed):
                self._dropped += 1
                return False
            n = _write_nb(self._fd, frame)
            if n < 0:
                self._write_failed(n, consumed)
                return False
            self._written += n
            if n < len(frame):
                self._pending = frame[n:]
            self._accepted += 1
            return True

    def _write_failed(self, err: int, consumed: int) -> None:
        self._dropped += 1
        if err in (-errno.EAGAIN, -errno.EPIPE):
            self._full_at = consumed  # no write again before the child reads (a dead one never)
        if err == -errno.EAGAIN:
            return
        if err == -errno.EPIPE:
            if not self._warned_dead:
                self._warned_dead = True
                log.warning("output %s: its process exited (status %s); its alerts are dropped",
                            self.sink.name, self._proc.poll())
        else:
            log.warning("output %s: write to its process failed: %s", self.sink.name,
                        os.strerror(-err))

    def _write_pending(self, consumed: int) -> bool:
        """Finish a partly written frame without blocking; False while some remains."""
        n = _write_nb(self._fd, self._pending)
        if n < 0:
            self._write_failed(n, consumed)
            self._dropped -= 1  # the caller counts the drop of its own frame
            return False
        self._written += n
        self._pending = self._pending[n:]
        return not self._pending

    def request_reopen(self) -> None:
        """SIGUSR1: the child reopens its sink before it writes the next alert; a NUDGE frame
        wakes an idle child. It runs in a signal handler, maybe inside ``put`` on the same
        thread: without the lock at once, ``put`` is writing, and the child reads and looks."""
        self._reopens += 1
        self._shared[REOPEN] = self._reopens
        if not self._lock.acquire(blocking=False):
            return
        try:  # between frames only; a full pipe (EAGAIN) means the child has bytes to read
            if self._fd >= 0 and not self._pending and _write_nb(self._fd, NUDGE) == len(NUDGE):
                self._written += len(NUDGE)
        finally:
            self._lock.release()

    def snapshot(self) -> SinkStats:
        """The counters now: the child's sent and errors, the drops counted here."""
        sent, errors = self._shared[SENT], self._shared[ERRORS]
        return SinkStats(self.sink.name, sent, self._dropped, errors,
                         max(0, self._accepted - sent - errors))

    @property
    def stats(self) -> SinkStats:
        return self.snapshot()

    def depth(self) -> int:
        return self.snapshot().queued

    def stop(self) -> None:
        """Close the pipe: the child delivers what is left, closes the sink and exits."""
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd < 0:
            return
        deadline = time.monotonic() + 1.0
        while self._pending and time.monotonic() < deadline:
            select.select([], [fd], [], 0.1)
            try:
                n = os.write(fd, self._pending)
                self._written += n
                self._pending = self._pending[n:]
            except BlockingIOError:
                continue
            except OSError as err:
                if err.errno != errno.EPIPE:
                    raise
                break
        os.close(fd)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the child to finish, then kill it."""
        if self._closed:
            return
        self._closed = True
        try:
            self._proc.wait(max(0.0, timeout))
        except subprocess.TimeoutExpired:
            log.warning("output %s: still blocked at shutdown, %d alerts not delivered",
                        self.sink.name, self.snapshot().queued)
            self._proc.kill()
            self._proc.wait()
            return
        if self._proc.returncode != 0:
            log.warning("output %s: its process exited with status %s", self.sink.name,
                        self._proc.returncode)

    def close(self, timeout: float) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the child."""
        self.stop()
        self.join(timeout)
