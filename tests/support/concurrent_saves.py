"""Several OS processes saving the same events at the same moment, as the runner's worker
processes and an extension's replicas do on a first deployment.

The processes come from a fork server that imported the application once and opened
nothing: each one opens its storage from scratch, like a new worker, without paying the
imports six times over on a two-core machine.
"""
import asyncio
import multiprocessing
import traceback
from typing import Any, Dict, List, Mapping, Sequence

from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import close_all, stores_for
from tests.support.records import purchase_record

START_TIMEOUT_SECONDS = 120
#: The installation whose events the processes save.
INSTALLATION = 'EIN-CONCURRENT'


def save_in_processes(
    processes: int, config: Mapping[str, str], requests: Sequence[Dict[str, Any]],
) -> List[Any]:
    """Start `processes` processes that wait for each other, then each save every request
    once in every configured store; each one's delivery counts, or its error's traceback."""
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload([__name__])
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [context.Process(target=_save_all, args=(dict(config), list(requests), barrier,
                                                       results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=START_TIMEOUT_SECONDS) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    return outcomes


def _save_all(config: Dict[str, str], requests: List[Dict[str, Any]], barrier: Any,
              results: Any) -> None:
    try:
        stores = stores_for(load_settings(config))
        records = [purchase_record(request, installation={'id': INSTALLATION})
                   for request in requests]
        barrier.wait(timeout=START_TIMEOUT_SECONDS)
        results.put(asyncio.run(_save(stores, records)))
    except BaseException:  # noqa: BLE001 - the test reports it
        results.put(traceback.format_exc())


async def _save(stores: List[Any], records: List[Any]) -> List[int]:
    try:
        return [await store.save(record) for record in records for store in stores]
    finally:
        await close_all()
