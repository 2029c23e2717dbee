"""How one benchmark measurement is taken: a closed loop of workers for a fixed time.

`concurrency` workers each take the next event number and process it, until the time is up;
the first `warmup` seconds are not counted (connections open, caches fill). Throughput is the
events completed in the measured window divided by its length; latencies are per event.
"""
import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterator, List, Optional

#: Processes event number `n` and returns whether it was stored.
Work = Callable[[int], Awaitable[bool]]


@dataclass(frozen=True)
class Measurement:
    backend: str
    path: str
    concurrency: int
    events: int
    failures: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def percentile(values: List[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation: p99 is a latency that happened)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def measure(
    work: Work,
    *,
    backend: str,
    path: str,
    concurrency: int,
    duration: float,
    warmup: float,
    numbers: Optional[Iterator[int]] = None,
) -> Measurement:
    """Run `work` with `concurrency` workers; count what completes in the measured window."""
    numbers = numbers if numbers is not None else itertools.count()
    start = time.monotonic() + warmup
    stop = start + duration
    latencies: List[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while time.monotonic() < stop:
            began = time.monotonic()
            ok = await work(next(numbers))
            ended = time.monotonic()
            if start <= ended <= stop:
                latencies.append(ended - began)
                failures += not ok

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Measurement(
        backend=backend, path=path, concurrency=concurrency, events=len(latencies),
        failures=failures, seconds=duration,
        p50_ms=statistics.median(latencies) * 1000 if latencies else 0.0,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )
