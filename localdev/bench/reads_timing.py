"""How the read benchmark times one call again and again, and what a row of its report says."""
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, List

from localdev.bench.measure import percentile

#: The Events page's target (README, Performance): the 99th percentile of an answer, in ms.
P99_TARGET_MS = 50.0


@dataclass(frozen=True)
class ReadResult:
    backend: str
    case: str
    requests: int
    p50_ms: float
    p99_ms: float

    @property
    def verdict(self) -> str:
        return 'PASS' if self.p99_ms <= P99_TARGET_MS else 'FAIL'


async def time_calls(
    backend: str, case: str, call: Callable[[], Awaitable[Any]], requests: int,
) -> ReadResult:
    """Make `call` `requests` times, one at a time, after a tenth as many more that warm
    caches and connections up and are not counted."""
    latencies: List[float] = []
    for index in range(requests + max(1, requests // 10)):
        started = time.perf_counter()
        await call()
        elapsed = (time.perf_counter() - started) * 1000
        if index >= max(1, requests // 10):
            latencies.append(elapsed)
    return ReadResult(backend, case, len(latencies), percentile(latencies, 0.5),
                      percentile(latencies, 0.99))
