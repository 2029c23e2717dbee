"""One run of the data lifecycle schedule in an OS process of its own, as a runner worker
runs it: `python -m tests.support.lifecycle_job` from the repository root.

Environment: LIFECYCLE_CONFIG (the variables, JSON), LIFECYCLE_BATCH (events per delete),
LIFECYCLE_PAUSE (seconds each delete waits before it starts), LIFECYCLE_WAIT (set: print
`ready` once loaded, then start when a line comes on stdin, so that several processes start
together). Before each delete the process prints `deleting` so that a test can kill it at a
chosen batch; at the end it prints the task result as one JSON line.
"""
import asyncio
import json
import logging
import os
import sys
from typing import Any

from connect_mongodb_example.storage import BACKENDS
from connect_mongodb_example.storage.registry import close_all
from tests.support.lifecycle import new_task_app, schedule_object

DELETING = 'deleting'
READY = 'ready'


def announce_deletes(pause: float) -> None:
    for backend in BACKENDS.values():
        delete_events = backend.delete_events

        async def announced(self: Any, *, _delete: Any = delete_events, **options: Any) -> int:
            print(DELETING, flush=True)
            await asyncio.sleep(pause)
            return await _delete(self, **options)

        backend.delete_events = announced


async def main() -> None:
    config = json.loads(os.environ['LIFECYCLE_CONFIG'])
    for backend in BACKENDS.values():
        backend.delete_batch = int(os.environ['LIFECYCLE_BATCH'])
    announce_deletes(float(os.environ.get('LIFECYCLE_PAUSE', '0')))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logger = logging.LoggerAdapter(logging.getLogger('lifecycle_job'), {})
    if os.environ.get('LIFECYCLE_WAIT'):
        print(READY, flush=True)
        sys.stdin.readline()
    try:
        response = await new_task_app(config, logger).run_data_lifecycle(schedule_object())
    finally:
        await close_all()
    print(json.dumps({'status': response.status, 'output': response.output}), flush=True)


if __name__ == '__main__':
    asyncio.run(main())
