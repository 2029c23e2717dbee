"""The data lifecycle through the EventStore interface, run against every registered backend
(the `store` fixture, tests/storage/conftest.py): installation records, purges and retention
deletes, counts kept exact. A new backend passes these unchanged."""
import asyncio
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import List

from connect_mongodb_example.installation_record import (
    INSTALLED,
    UNINSTALLED,
    InstallationRecord,
)
from connect_mongodb_example.storage.base import EventFilter, EventStore
from tests.support.records import purchase_record

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
MINE = 'EIN-1111-1111-1111'
THEIRS = 'EIN-2222-2222-2222'
STATUSES = ('pending', 'approved', 'failed')


def installed(installation_id: str = MINE, minutes: int = 0, **changes) -> InstallationRecord:
    fields = {'status': INSTALLED, 'account_id': 'VA-000-001',
              'environment_id': 'ENV-0001-0001-01', **changes}
    return InstallationRecord(installation_id=installation_id,
                              changed_at=T0 + timedelta(minutes=minutes), **fields)


async def fill(store: EventStore, purchase_request, installation_id, count: int,
               days_old=lambda n: n) -> List:
    """`count` events of the installation (None: of none), the n-th first received
    `days_old(n)` days before T0, statuses in turn."""
    records = []
    for n in range(count):
        record = purchase_record(
            purchase_request(f'PR-{n:04d}-{installation_id or "none"}',
                             status=STATUSES[n % len(STATUSES)]),
            installation={'id': installation_id} if installation_id else None,
            received_at=T0 - timedelta(days=days_old(n)),
        )
        await store.save(record)
        records.append(record)
    return records


async def everything(store: EventStore, installation_id: str) -> List[str]:
    return sorted(r.key for r in await store.list_events(EventFilter(installation_id),
                                                         limit=10_000))


async def counts(store: EventStore, installation_id: str) -> List[int]:
    return [await store.count_events(EventFilter(installation_id))] + [
        await store.count_events(EventFilter(installation_id, status=status))
        for status in STATUSES]


async def test_an_installation_record_is_kept_and_read_back(store):
    mine = installed(purge_after=None)
    assert await store.get_installation(MINE) is None
    assert await store.save_installation(mine) == mine
    assert await store.get_installation(MINE) == mine
    theirs = installed(THEIRS, account_id=None, environment_id=None)
    await store.save_installation(theirs)
    assert await store.list_installations() == [mine, theirs]


async def test_the_latest_change_wins_whatever_the_order_of_delivery(store):
    first = installed()
    uninstall = replace(first, status=UNINSTALLED, changed_at=T0 + timedelta(days=1),
                        purge_after=T0 + timedelta(days=31))
    reinstall = replace(first, changed_at=T0 + timedelta(days=2))
    for order in ([first, uninstall, reinstall], [reinstall, uninstall, first],
                  [uninstall, reinstall, uninstall, first]):
        for record in order:
            await store.save_installation(record)
        assert await store.get_installation(MINE) == reinstall
    # The same change again (a redelivery, or the job marking its purge done) replaces it.
    done = replace(reinstall, purged_at=T0 + timedelta(days=3))
    assert await store.save_installation(done) == done
    assert await store.save_installation(uninstall) == done


async def test_racing_status_changes_end_with_the_latest(store):
    changes = [installed(minutes=minute, status=(INSTALLED, UNINSTALLED)[minute % 2])
               for minute in range(20)]
    random.Random(3).shuffle(changes)
    await asyncio.gather(*(store.save_installation(change) for change in changes))
    assert (await store.get_installation(MINE)).changed_at == T0 + timedelta(minutes=19)


async def test_a_purge_deletes_one_installation_and_its_counts(store, purchase_request):
    mine = await fill(store, purchase_request, MINE, 12)
    await fill(store, purchase_request, THEIRS, 5)
    await fill(store, purchase_request, None, 2)
    theirs_before = (await everything(store, THEIRS), await counts(store, THEIRS))
    deleted = []
    while True:
        count = await store.delete_events(limit=5, installation_id=MINE)
        deleted.append(count)
        if count == 0:
            break
        # Between batches the page and its counts agree.
        assert await counts(store, MINE) == await _counted(store, MINE)
    assert deleted == [5, 5, 2, 0]
    assert await everything(store, MINE) == []
    assert await counts(store, MINE) == [0, 0, 0, 0]
    assert await store.find(mine[0].request_id) == []
    assert (await everything(store, THEIRS), await counts(store, THEIRS)) == theirs_before
    assert len(await store.find('PR-0000-none')) == 1


async def test_retention_deletes_exactly_the_events_first_received_before_the_cutoff(
    store, purchase_request,
):
    mine = await fill(store, purchase_request, MINE, 10)  # 0 to 9 days old
    theirs = await fill(store, purchase_request, THEIRS, 6, days_old=lambda n: 2 * n)
    none = await fill(store, purchase_request, None, 4)
    # A redelivery today does not make an old event young: it was received before.
    await store.save(replace(mine[8], received_at=T0, last_received_at=T0))
    cutoff = T0 - timedelta(days=4, hours=12)
    total = 0
    while True:
        count = await store.delete_events(limit=3, received_before=cutoff)
        assert count <= 3
        total += count
        if count == 0:
            break
    kept = {record.key for record in mine + theirs + none if record.received_at >= cutoff}
    assert total == len(mine + theirs + none) - len(kept)
    assert await everything(store, MINE) == sorted(r.key for r in mine[:5])
    assert await everything(store, THEIRS) == sorted(r.key for r in theirs[:3])
    assert [len(await store.find(r.request_id)) for r in none] == [1, 1, 1, 1]
    assert await counts(store, MINE) == await _counted(store, MINE) == [5, 2, 2, 1]
    assert await counts(store, THEIRS) == [3, 1, 1, 1]


async def test_retention_of_one_installation_only(store, purchase_request):
    await fill(store, purchase_request, MINE, 6)
    theirs = await fill(store, purchase_request, THEIRS, 6)
    cutoff = T0 - timedelta(days=2, hours=12)
    assert await store.delete_events(limit=100, installation_id=MINE,
                                     received_before=cutoff) == 3
    assert len(await everything(store, MINE)) == 3
    assert await everything(store, THEIRS) == sorted(r.key for r in theirs)


async def test_deletes_racing_each_other_and_writes_end_exact(store, purchase_request):
    """Two jobs purge the same installation at once while another one's events are written:
    every event goes once, and every count matches what is stored."""
    await fill(store, purchase_request, MINE, 40)
    await fill(store, purchase_request, THEIRS, 10)
    deleted: List[int] = []

    async def job() -> None:
        while True:
            count = await store.delete_events(limit=4, installation_id=MINE)
            deleted.append(count)
            if count == 0:
                return

    async def writes() -> None:
        for n in range(10, 30):
            record = purchase_record(
                purchase_request(f'PR-{n:04d}-late', status=STATUSES[n % 3]),
                installation={'id': THEIRS}, received_at=T0)
            await store.save(record)
            await store.save(record)  # and its redelivery

    await asyncio.gather(job(), job(), writes())
    assert sum(deleted) == 40
    assert await counts(store, MINE) == [0, 0, 0, 0]
    assert len(await everything(store, THEIRS)) == 30
    assert await counts(store, THEIRS) == await _counted(store, THEIRS)


async def _counted(store: EventStore, installation_id: str) -> List[int]:
    """What the counts must say: the listed events, by status."""
    listed = await store.list_events(EventFilter(installation_id), limit=10_000)
    return [len(listed)] + [sum(1 for r in listed if r.status == status)
                            for status in STATUSES]
