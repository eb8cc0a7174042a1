"""The one retry policy of the registry client: how many times, how long to wait, what waits.

Every retry loop of :mod:`falcoctl_py.oci` (a request refused or cut, a 429/5xx answer, a blob
cut mid-download) counts its attempts with an :class:`Attempts` made from the client's
:class:`RetryPolicy`, so the limits, the backoff and the ``Retry-After`` cap are the same
everywhere.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``max_retries`` retries, ``backoff`` doubling each time (or the server's
    ``Retry-After``), never waiting more than ``max_wait`` seconds."""

    max_retries: int = 3
    max_wait: float = 10.0
    backoff: float = 0.25

    def delay(self, attempt: int, wait: float | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first)."""
        delay = wait if wait is not None else self.backoff * (2 ** (attempt - 1))
        return min(max(delay, 0.0), self.max_wait)

    def limit(self, err: httpx.HTTPError) -> int:
        """How many retries an error earns: a refused connection one (a registry that is down
        stays down), another transport error the policy's count, anything else none."""
        if isinstance(err, httpx.ConnectError):
            return min(1, self.max_retries)
        return self.max_retries if isinstance(err, httpx.TransportError) else 0


class Attempts:
    """The attempts of one request under a policy; ``on_retry`` is called before each wait."""

    def __init__(
        self,
        policy: RetryPolicy,
        what: str,
        *,
        on_retry: Callable[[], None] = lambda: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self.what = what
        self.made = 0  # retries so far
        self._on_retry = on_retry
        self._sleep = sleep

    def left(self, limit: int | None = None) -> bool:
        """Whether one more retry is allowed (within ``limit`` when given)."""
        return self.made < (self.policy.max_retries if limit is None else limit)

    def pause(self, wait: float | None = None) -> None:
        """Count one retry and wait before it (``wait``: the server's ``Retry-After``)."""
        self.made += 1
        self._on_retry()
        delay = self.policy.delay(self.made, wait)
        log.debug("retrying %s in %.2fs (attempt %d)", self.what, delay, self.made + 1)
        self._sleep(delay)


def retry_after(resp: httpx.Response) -> float | None:
    """The seconds a ``Retry-After`` header asks for (a number or an HTTP date), if any."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())
