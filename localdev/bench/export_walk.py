"""An installation's whole export, part after part, as a caller downloads it: each answer's
Link rel="next" is the next request, until an answer has none.

Each part is counted and dropped: the walk keeps one part at a time, as a download written to
disk would, so that the process's memory measures the web application, not the caller.
"""
import re
import time
from dataclasses import dataclass
from typing import Optional

import httpx

NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass(frozen=True)
class ExportWalk:
    format: str
    parts: int
    #: Rows counted in the bodies (lines, less the CSV header).
    rows: int
    #: The sum of the parts' X-Export-Events headers.
    announced: int
    largest_part: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def next_link(response: httpx.Response) -> Optional[str]:
    match = NEXT.search(response.headers.get('link', ''))
    return match.group(1) if match else None


async def walk_export(client: httpx.AsyncClient, format_name: str,
                      max_parts: Optional[int] = None) -> ExportWalk:
    """Download every part (at most `max_parts`: a warm-up) and count its rows."""
    url: Optional[str] = f'/api/events/export?format={format_name}'
    parts = rows = announced = largest = 0
    started = time.perf_counter()
    while url is not None and (max_parts is None or parts < max_parts):
        response = await client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f'export {format_name} part {parts + 1}: HTTP '
                               f'{response.status_code} {response.text[:200]}')
        body = response.content
        # One line per event: JSON escapes the newlines a document may hold, and CSV quotes
        # no field with one in it here. The CSV header is the first part's first line.
        rows += body.count(b'\n') - (1 if parts == 0 and format_name == 'csv' else 0)
        announced += int(response.headers['x-export-events'])
        largest = max(largest, len(body))
        parts += 1
        url = next_link(response)
        del body, response
    return ExportWalk(format_name, parts, rows, announced, largest,
                      time.perf_counter() - started)
