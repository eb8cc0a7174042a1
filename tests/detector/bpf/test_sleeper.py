"""The reader's sleeps: the back-off between looks at empty rings survives read timeouts and
records (the idle reader wakes ~33 times a second, not ~260), and a stop ends a long sleep at
once."""

from __future__ import annotations

import threading

from detector.bpf.ringbuf import POLL_MAX, Sleeper
from tests.eventually import eventually


def test_the_back_off_reaches_its_cap_and_keeps_it_across_waits() -> None:
    s = Sleeper([])
    try:
        s.wait(lambda: False, 0.2)  # idle: 0.5, 1, 2, 4, 8, 16, 30, 30... ms
        assert s.delay == POLL_MAX
        before = s.wakeups
        s.wait(lambda: False, 0.05)  # the next read's wait starts at the cap: 30 + 20 ms
        assert s.wakeups - before <= 3  # a back-off restarted per wait would take 7
        s.wait(lambda: True, 0.05)  # records are there: no sleep, and the back-off stays
        assert s.wakeups - before <= 3 and s.delay == POLL_MAX
    finally:
        s.close()


def test_records_found_keep_the_back_off() -> None:
    s = Sleeper([])
    looks = iter([False] * 12 + [True])
    try:
        s.wait(lambda: next(looks), 5.0)  # a sparse trickle: the next wait sleeps long at once
        assert s.delay == POLL_MAX
    finally:
        s.close()


def test_wake_ends_a_long_nap_and_a_wait() -> None:
    s = Sleeper([])
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(s.nap(600)), daemon=True)
    t.start()
    try:
        s.wake()
        eventually(lambda: got, what="the nap ended by wake()")
        assert got == [2]
        s.wake()
        s.wait(lambda: False, 600)  # returns: woken, though nothing is ready
    finally:
        s.wake()
        t.join(timeout=5)
        s.close()
