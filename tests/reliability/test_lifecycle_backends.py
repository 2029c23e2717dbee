"""The data lifecycle on every registered backend and server (tests/support/backends.py):
installation status changes delivered to the application, then the schedule run as the
runner runs it, and what each store holds afterwards."""
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator, Dict

import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example.data_lifecycle import plan_run, run_lifecycle
from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from tests.support.backends import backend_config, backend_targets
from tests.support.lifecycle import (
    counted,
    counts,
    deliver_installation,
    fill,
    installation_object,
    run_schedule,
    stored_keys,
    unowned_keys,
)

GONE = 'EIN-1111-1111-1111'
STAYS = 'EIN-2222-2222-2222'
PURGE = {'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '30'}


@pytest.fixture(params=backend_targets())
async def config(request) -> AsyncIterator[Dict[str, str]]:
    async with backend_config(request.param, request) as config:
        yield {**config, **PURGE}


def the_store(config):
    [store] = stores_for(load_settings(config))
    return store


def days_ago(*days):
    now = utcnow()
    return [now - timedelta(days=day) for day in days]


async def test_an_uninstall_with_purge_removes_that_installation_s_events_and_counts_only(
    config, logger,
):
    store = the_store(config)
    await fill(store, GONE, days_ago(*range(40, 47)))
    theirs = await fill(store, STAYS, days_ago(*range(40, 45)))
    nobody = await fill(store, None, days_ago(40, 41))
    theirs_counts = await counts(store, STAYS)
    for installation in (installation_object(GONE, 'uninstalled', utcnow() - timedelta(days=31)),
                         installation_object(STAYS, 'installed')):
        assert (await deliver_installation(installation, config, logger)).status == \
            ResultType.SUCCESS

    response = await run_schedule(config, logger)

    assert response.status == ResultType.SUCCESS, response.output
    assert f'purged 1 installation ({GONE}); 7 events deleted by purges' in response.output
    assert await stored_keys(store, GONE) == []
    assert await counts(store, GONE) == (0, 0, 0, 0)
    assert await stored_keys(store, STAYS) == sorted(theirs)
    assert await counts(store, STAYS) == theirs_counts == await counted(store, STAYS)
    assert await unowned_keys(store, 2) == sorted(nobody)
    gone = await store.get_installation(GONE)
    assert gone.purged_at >= gone.purge_after
    # The next run has nothing left to do.
    response = await run_schedule(config, logger)
    assert 'no purge due' in response.output


async def test_a_reinstall_within_the_grace_keeps_everything(config, logger):
    store = the_store(config)
    mine = await fill(store, GONE, days_ago(60, 50, 40, 1))
    uninstalled_at = utcnow() - timedelta(days=45)
    for installation in (
        installation_object(GONE, 'uninstalled', uninstalled_at),
        installation_object(GONE, 'installed', uninstalled_at + timedelta(days=29)),
        # Connect redelivers the uninstall, late: the reinstall still stands.
        installation_object(GONE, 'uninstalled', uninstalled_at),
    ):
        assert (await deliver_installation(installation, config, logger)).status == \
            ResultType.SUCCESS

    response = await run_schedule(config, logger)

    assert response.status == ResultType.SUCCESS, response.output
    assert await stored_keys(store, GONE) == sorted(mine)
    assert await counts(store, GONE) == await counted(store, GONE)
    record = await store.get_installation(GONE)
    assert (record.status, record.purge_after, record.purged_at) == ('installed', None, None)


async def test_retention_deletes_exactly_the_events_older_than_the_cutoff(config, logger):
    config = {**config, 'EVENTS_RETENTION_DAYS': '10'}
    store = the_store(config)
    now = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)
    cutoff = now - timedelta(days=10)
    millisecond = timedelta(milliseconds=1)
    times = [cutoff - timedelta(days=400), cutoff - millisecond, cutoff, cutoff + millisecond,
             now]
    mine = await fill(store, GONE, times)
    theirs = await fill(store, STAYS, times)
    nobody = await fill(store, None, times)

    summary = await run_lifecycle([store], plan_run(load_settings(config), now=now), logger)

    assert summary.errors == []
    assert summary.stores[0].retention_deleted == 6
    assert await stored_keys(store, GONE) == sorted(mine[2:])
    assert await stored_keys(store, STAYS) == sorted(theirs[2:])
    assert await unowned_keys(store, 5) == sorted(nobody[2:])
    assert await counts(store, GONE) == await counted(store, GONE) == (3, 1, 1, 1)
