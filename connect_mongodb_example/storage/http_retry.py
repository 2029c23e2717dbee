"""When to retry an HTTP request, and how long to wait before the next attempt."""
import math
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Optional

import httpx

BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 3.0
RETRY_AFTER_CAP_SECONDS = 5.0
# Transport errors where another attempt may succeed. A read timeout may come after the
# server applied the request, so a retried upsert can count one delivery twice, never lose one.
RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def retryable_status(status: int) -> bool:
    """429 and 5xx: the server is busy or failing, another attempt may pass."""
    return status == 429 or status >= 500


def backoff(attempt: int) -> float:
    """Exponential, capped, with jitter so that many stores do not retry in step."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def retry_after(response: httpx.Response) -> Optional[float]:
    """The server's Retry-After (seconds or an HTTP date), capped; None if absent or bad."""
    value = response.headers.get('retry-after', '').strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        # `Retry-After: nan` would make the sleep never end; `inf` is no better.
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)
