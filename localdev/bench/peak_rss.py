"""Peak resident memory of this process over a stretch of work, above a baseline.

Two readings, the larger kept: Linux's high-water mark (VmHWM), reset at the start by
writing 5 to /proc/self/clear_refs where the kernel allows it, and RSS sampled by a thread
every few milliseconds (which a short spike between samples can escape). ru_maxrss is not
used: it never goes down, so a bulk load earlier in the same process would hide the growth.
"""
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Optional, Type

from localdev.bench.rss import rss_bytes

SAMPLE_SECONDS = 0.005
STATUS = Path('/proc/self/status')
CLEAR_REFS = Path('/proc/self/clear_refs')


def high_water_mark() -> Optional[int]:
    """VmHWM in bytes; None where /proc does not give it."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def reset_high_water_mark() -> bool:
    """Set VmHWM to the current RSS; False where the kernel refuses."""
    try:
        CLEAR_REFS.write_text('5')
    except OSError:
        return False
    return True


class PeakRss:
    """`with PeakRss() as peak: ...`, then `peak.growth`: the bytes by which resident memory
    rose above what it was on entering (take it after warming up what the work uses)."""

    def __init__(self) -> None:
        self.baseline = 0
        self.peak = 0
        self.hwm_reset = False
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> 'PeakRss':
        self.baseline = self.peak = rss_bytes(os.getpid()) or 0
        self.hwm_reset = reset_high_water_mark()
        self._thread = threading.Thread(target=self._sample, name='peak-rss', daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException],
                 trace: Optional[TracebackType]) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self._read()
        if self.hwm_reset:
            self.peak = max(self.peak, high_water_mark() or 0)

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.baseline)

    def _read(self) -> None:
        self.peak = max(self.peak, rss_bytes(os.getpid()) or 0)

    def _sample(self) -> None:
        while not self._done.is_set():
            self._read()
            time.sleep(SAMPLE_SECONDS)
