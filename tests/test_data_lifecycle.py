"""The data lifecycle job (data_lifecycle.py) and its schedule (`run_data_lifecycle`), on the
in-memory fake backend: which purges run, what they delete, retention, the parameter, the
task results. tests/reliability/test_lifecycle_*.py run it on every real backend."""
import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example import data_lifecycle
from connect_mongodb_example.data_lifecycle import plan_run, run_lifecycle
from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.event_record import utcnow
from connect_mongodb_example.installation_record import INSTALLED, InstallationRecord
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from tests.support.lifecycle import (
    counts,
    deliver_installation,
    fill,
    installation_object,
    run_schedule,
    stored_keys,
)

GONE = 'EIN-1111-1111-1111'
STAYS = 'EIN-2222-2222-2222'
CONFIG = {'STORAGE_BACKENDS': 'fake', 'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '30'}
NOW = datetime(2026, 6, 1, 3, 0, tzinfo=timezone.utc)


def the_store(config=CONFIG):
    [store] = stores_for(load_settings(config))
    return store


def days_ago(*days, now=None):
    now = now or utcnow()
    return [now - timedelta(days=day) for day in days]


async def purge_due(store) -> None:
    """GONE uninstalled 31 days before NOW, its purge due since the day before NOW."""
    await store.save_installation(InstallationRecord(
        GONE, 'uninstalled', NOW - timedelta(days=31), purge_after=NOW - timedelta(days=1)))


async def uninstalled(installation_id, days_ago_, config=CONFIG, logger=None):
    """The installation uninstalled that many days ago, as the handler keeps it."""
    at = utcnow() - timedelta(days=days_ago_)
    response = await deliver_installation(installation_object(installation_id, 'uninstalled',
                                                              at), config, logger)
    assert response.status == ResultType.SUCCESS


async def test_a_due_purge_deletes_that_installation_s_events_only(fake_backend, logger):
    store = the_store()
    await fill(store, GONE, days_ago(40, 35, 33, 2, 1))
    theirs = await fill(store, STAYS, days_ago(40, 3))
    nobody = await fill(store, None, days_ago(40))
    await uninstalled(GONE, 31, logger=logger)
    await deliver_installation(installation_object(STAYS, 'installed'), CONFIG, logger)

    response = await run_schedule(CONFIG, logger)

    assert response.status == ResultType.SUCCESS
    assert await stored_keys(store, GONE) == []
    assert await counts(store, GONE) == (0, 0, 0, 0)
    assert await stored_keys(store, STAYS) == sorted(theirs)
    assert [record.key for record in await store.find('PR-0000-none')] == nobody
    record = await store.get_installation(GONE)
    assert record.purged_at >= record.purge_after
    assert (record.status, record.purge_after) == ('uninstalled',
                                                   record.changed_at + timedelta(days=30))
    assert f'fake: purged 1 installation ({GONE}); 5 events deleted by purges' in response.output
    assert 'retention off (EVENTS_RETENTION_DAYS is 0)' in response.output


async def test_a_purge_within_the_grace_is_not_due(fake_backend, logger):
    store = the_store()
    mine = await fill(store, GONE, days_ago(40, 1))
    await uninstalled(GONE, 29, logger=logger)
    response = await run_schedule(CONFIG, logger)
    assert response.status == ResultType.SUCCESS
    assert await stored_keys(store, GONE) == sorted(mine)
    assert (await store.get_installation(GONE)).purged_at is None
    assert 'fake: no purge due; 0 events deleted by retention.' in response.output


async def test_under_keep_an_uninstall_is_never_purged(fake_backend, logger):
    config = {**CONFIG, 'ON_UNINSTALL': 'keep'}
    store = the_store(config)
    mine = await fill(store, GONE, days_ago(400))
    await uninstalled(GONE, 365, config, logger)
    assert (await run_schedule(config, logger)).status == ResultType.SUCCESS
    assert await stored_keys(store, GONE) == sorted(mine)


async def test_a_reinstall_within_the_grace_keeps_everything(fake_backend, logger):
    store = the_store()
    mine = await fill(store, GONE, days_ago(40, 20, 1))
    await uninstalled(GONE, 40, logger=logger)
    await deliver_installation(installation_object(GONE, 'installed', utcnow()
                                                   - timedelta(days=20)), CONFIG, logger)
    response = await run_schedule(CONFIG, logger)
    assert response.status == ResultType.SUCCESS
    assert await stored_keys(store, GONE) == sorted(mine)
    assert (await store.get_installation(GONE)).status == INSTALLED


async def test_purges_go_in_batches_and_a_second_run_finds_nothing_to_do(
    fake_backend, monkeypatch, logger,
):
    monkeypatch.setattr(fake_backend, 'delete_batch', 3)
    store = the_store()
    await fill(store, GONE, days_ago(*range(40, 50)))
    await uninstalled(GONE, 31, logger=logger)
    deleted = []
    delete_events = store.delete_events

    async def counted(**options):
        deleted.append((options['limit'], await delete_events(**options)))
        return deleted[-1][1]

    monkeypatch.setattr(store, 'delete_events', counted)
    await run_schedule(CONFIG, logger)
    assert deleted == [(3, 3), (3, 3), (3, 3), (3, 1), (3, 0)]
    deleted.clear()
    response = await run_schedule(CONFIG, logger)
    assert 'fake: no purge due' in response.output
    assert deleted == []


async def test_a_reinstall_during_a_purge_stops_it_and_keeps_the_rest(
    fake_backend, monkeypatch, logger,
):
    monkeypatch.setattr(fake_backend, 'delete_batch', 2)
    store = the_store()
    await fill(store, GONE, days_ago(*range(40, 50)))
    await uninstalled(GONE, 31, logger=logger)
    delete_events = store.delete_events

    async def reinstalled_after_the_first_batch(**options):
        deleted = await delete_events(**options)
        await deliver_installation(installation_object(GONE, 'installed'), CONFIG, logger)
        return deleted

    monkeypatch.setattr(store, 'delete_events', reinstalled_after_the_first_batch)
    response = await run_schedule(CONFIG, logger)

    assert response.status == ResultType.SUCCESS
    assert len(await stored_keys(store, GONE)) == 8
    assert (await counts(store, GONE))[0] == 8
    record = await store.get_installation(GONE)
    assert (record.status, record.purge_after, record.purged_at) == (INSTALLED, None, None)
    assert (f'purge of {GONE} stopped: the installation was reinstalled; what is left is '
            'kept') in response.output


async def test_only_events_received_before_the_run_are_purged_and_the_rest_waits(
    fake_backend, logger,
):
    """An event that arrives while the purge runs (a late redelivery) is not deleted by this
    run, which leaves the purge to the next one instead of marking it done."""
    store = the_store()
    settings = load_settings(CONFIG)
    await fill(store, GONE, days_ago(40, 35, now=NOW))
    await purge_due(store)
    late = await fill(store, GONE, [NOW + timedelta(seconds=1)], first=2)

    summary = await run_lifecycle([store], plan_run(settings, now=NOW), logger)

    assert await stored_keys(store, GONE) == late
    assert summary.stores[0].stopped == [(GONE, 'not finished: 1 event left for the next run')]
    assert (await store.get_installation(GONE)).purged_at is None
    summary = await run_lifecycle([store], plan_run(settings, now=NOW + timedelta(hours=1)),
                                  logger)
    assert (summary.stores[0].purged, summary.stores[0].purge_deleted) == ([GONE], 1)
    assert (await store.get_installation(GONE)).purged_at == NOW + timedelta(hours=1)


async def test_events_another_run_is_deleting_do_not_end_the_purge(
    fake_backend, monkeypatch, logger,
):
    """A delete may find nothing while another run holds the last events in a batch of its
    own: the purge goes on while what is left goes down, and ends marked."""
    monkeypatch.setattr(fake_backend, 'delete_batch', 2)
    store = the_store()
    await fill(store, GONE, days_ago(*range(40, 46), now=NOW))
    await purge_due(store)
    delete_events = store.delete_events
    calls = []

    async def another_run_takes_the_second_batch(**options):
        calls.append(options)
        if len(calls) == 2:
            await delete_events(**options)  # the other run's batch, not this one's
            return 0
        return await delete_events(**options)

    monkeypatch.setattr(store, 'delete_events', another_run_takes_the_second_batch)
    summary = await run_lifecycle([store], plan_run(load_settings(CONFIG), now=NOW), logger)

    assert (summary.stores[0].purged, summary.stores[0].purge_deleted) == ([GONE], 4)
    assert await stored_keys(store, GONE) == []
    assert (await store.get_installation(GONE)).purged_at == NOW


async def test_retention_deletes_exactly_the_events_first_received_before_the_cutoff(
    fake_backend, logger,
):
    config = {**CONFIG, 'EVENTS_RETENTION_DAYS': '10'}
    store = the_store(config)
    cutoff = NOW - timedelta(days=10)
    millisecond = timedelta(milliseconds=1)
    mine = await fill(store, STAYS, [cutoff - timedelta(days=300), cutoff - millisecond,
                                     cutoff, cutoff + millisecond, NOW])
    nobody = await fill(store, None, [cutoff - millisecond, cutoff])
    # A redelivery now does not make an old event young: it was first received before.
    [old] = await store.find('PR-0001-' + STAYS, STAYS)
    await store.save(replace(old, received_at=NOW, last_received_at=NOW))

    summary = await run_lifecycle([store], plan_run(load_settings(config), now=NOW), logger)

    assert summary.plan.retention_cutoff == cutoff
    assert await stored_keys(store, STAYS) == sorted(mine[2:])
    assert await counts(store, STAYS) == (3, 1, 1, 1)
    assert [record.key for n in range(2) for record in await store.find(f'PR-{n:04d}-none')] \
        == nobody[1:]
    assert summary.stores[0].retention_deleted == 3
    assert 'retention: events first received before 2026-05-22T03:00:00.000Z' in \
        summary.describe()


async def test_the_run_s_time_is_whole_milliseconds(fake_backend):
    settings = load_settings({**CONFIG, 'EVENTS_RETENTION_DAYS': '1'})
    plan = plan_run(settings, now=NOW.replace(microsecond=123_456))
    assert plan.now == NOW.replace(microsecond=123_000)
    assert plan.retention_cutoff == plan.now - timedelta(days=1)


async def test_a_parameter_naming_one_installation_runs_its_purge_and_retention_only(
    fake_backend, logger,
):
    config = {**CONFIG, 'EVENTS_RETENTION_DAYS': '30'}
    store = the_store(config)
    third = 'EIN-3333-3333-3333'
    await fill(store, GONE, days_ago(40, 1))
    theirs = await fill(store, STAYS, days_ago(40, 1))
    await fill(store, third, days_ago(40, 1))
    await uninstalled(GONE, 31, config, logger)
    await uninstalled(STAYS, 31, config, logger)
    await deliver_installation(installation_object(third, 'installed'), config, logger)

    response = await run_schedule(config, logger, {'installation_id': GONE})
    assert response.status == ResultType.SUCCESS
    assert await stored_keys(store, GONE) == []
    assert await stored_keys(store, STAYS) == sorted(theirs)
    assert f'installation {GONE} only' in response.output

    response = await run_schedule(config, logger, {'installation_id': third})
    assert response.status == ResultType.SUCCESS
    assert len(await stored_keys(store, third)) == 1
    assert await stored_keys(store, STAYS) == sorted(theirs)
    assert 'fake: no purge due; 1 event deleted by retention.' in response.output


async def test_an_installation_no_store_recorded_does_nothing_and_says_so(
    fake_backend, logger,
):
    store = the_store()
    mine = await fill(store, GONE, days_ago(400))
    response = await run_schedule({**CONFIG, 'EVENTS_RETENTION_DAYS': '1'}, logger,
                                  {'installation_id': 'EIN-9999-9999-9999'})
    assert response.status == ResultType.SUCCESS
    assert 'no store has a record of installation EIN-9999-9999-9999' in response.output
    assert 'nothing done' in response.output
    assert await stored_keys(store, GONE) == sorted(mine)


@pytest.mark.parametrize(('parameter', 'problem'), [
    ('EIN-1111-1111-1111', 'must be a JSON object such as {"installation_id": "EIN-..."}'),
    (['EIN-1111-1111-1111'], 'got list'),
    ({'instalation_id': 'EIN-1111-1111-1111'}, "unknown keys ('instalation_id')"),
    ({'installation_id': ''}, 'installation_id must be an installation id'),
    ({'installation_id': 5}, 'got 5'),
    ({'installation_id': None}, 'got None'),
])
async def test_a_malformed_parameter_fails_saying_what_is_wrong(
    fake_backend, logger, caplog, parameter, problem,
):
    store = the_store()
    mine = await fill(store, GONE, days_ago(40))
    await uninstalled(GONE, 31, logger=logger)
    response = await run_schedule(CONFIG, logger, parameter)
    assert response.status == ResultType.FAIL
    assert problem in response.output
    assert f'Data lifecycle not run: {response.output}' in caplog.text
    assert await stored_keys(store, GONE) == sorted(mine)


@pytest.mark.parametrize('parameter', [None, {}, ''])
async def test_no_parameter_means_every_installation(fake_backend, logger, parameter):
    store = the_store()
    await fill(store, GONE, days_ago(40))
    await uninstalled(GONE, 31, logger=logger)
    response = await run_schedule(CONFIG, logger, parameter)
    assert response.status == ResultType.SUCCESS
    assert 'every installation' in response.output
    assert await stored_keys(store, GONE) == []


@pytest.mark.parametrize(('variable', 'value'), [
    ('ON_UNINSTALL', 'later'), ('PURGE_GRACE_DAYS', '-1'), ('PURGE_GRACE_DAYS', 'thirty'),
    ('EVENTS_RETENTION_DAYS', '-1'), ('EVENTS_RETENTION_DAYS', 'ten'),
])
async def test_bad_configuration_fails_the_run_naming_the_variable(
    fake_backend, logger, caplog, variable, value,
):
    store = the_store()
    mine = await fill(store, GONE, days_ago(40))
    await uninstalled(GONE, 31, logger=logger)
    response = await run_schedule({**CONFIG, variable: value}, logger)
    assert response.status == ResultType.FAIL
    assert response.output.startswith(f'Configuration problem: {variable}: ')
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f'Configuration problem, data lifecycle not run: '
                      f'{response.output[len("Configuration problem: "):]}']
    assert await stored_keys(store, GONE) == sorted(mine)


@pytest.mark.parametrize('error', [
    StorageUnavailable('fake: no answer within 10s'),
    StorageRejected('fake: 403 forbidden'),
    ConfigurationError('DATABASE_URL', 'the server refused the password'),
])
async def test_a_failing_store_fails_the_run_which_the_next_one_resumes(
    fake_backend, monkeypatch, logger, caplog, error,
):
    monkeypatch.setattr(fake_backend, 'delete_batch', 2)
    store = the_store()
    await fill(store, GONE, days_ago(*range(40, 47)))
    await uninstalled(GONE, 31, logger=logger)
    delete_events = store.delete_events
    calls = []

    async def failing_after_two_batches(**options):
        calls.append(options)
        if len(calls) > 2:
            raise error
        return await delete_events(**options)

    monkeypatch.setattr(store, 'delete_events', failing_after_two_batches)
    response = await run_schedule(CONFIG, logger)

    assert response.status == ResultType.FAIL
    assert (f'fake: 4 events deleted by purges; 0 events deleted by retention; stopped by '
            f'an error, the next run resumes: {error}.') in response.output
    assert response.output in caplog.text
    assert len(await stored_keys(store, GONE)) == 3
    assert (await store.get_installation(GONE)).purged_at is None

    monkeypatch.setattr(store, 'delete_events', delete_events)
    response = await run_schedule(CONFIG, logger)
    assert response.status == ResultType.SUCCESS
    assert f'purged 1 installation ({GONE}); 3 events deleted by purges' in response.output
    assert await stored_keys(store, GONE) == []


async def test_storage_that_hangs_is_bounded_by_the_timeout(fake_backend, monkeypatch, logger):
    config = {**CONFIG, 'STORAGE_TIMEOUT_SECONDS': '0.2'}
    store = the_store(config)
    await fill(store, GONE, days_ago(40))
    await uninstalled(GONE, 31, config, logger)

    async def hangs(**options):
        await asyncio.Event().wait()

    monkeypatch.setattr(store, 'delete_events', hangs)
    response = await asyncio.wait_for(run_schedule(config, logger), 10)
    assert response.status == ResultType.FAIL
    assert 'fake: no answer within 0.2s' in response.output


async def test_an_unforeseen_error_is_raised_for_connect_to_retry(
    fake_backend, monkeypatch, logger, caplog,
):
    store = the_store()
    await uninstalled(GONE, 31, logger=logger)

    async def broken(**options):
        raise KeyError('a bug')

    monkeypatch.setattr(store, 'delete_events', broken)
    with pytest.raises(KeyError):
        await run_schedule(CONFIG, logger)
    assert "stopped by an error, the next run resumes: 'a bug'" in caplog.text


async def test_two_runs_at_once_share_the_deletes(fake_backend, monkeypatch, logger):
    monkeypatch.setattr(fake_backend, 'delete_batch', 3)
    config = {**CONFIG, 'EVENTS_RETENTION_DAYS': '100'}
    store = the_store(config)
    settings = load_settings(config)
    await fill(store, GONE, days_ago(*range(40, 70), now=NOW))
    theirs = await fill(store, STAYS, days_ago(*range(95, 105), now=NOW))
    await purge_due(store)
    delete_events = store.delete_events

    async def interleaved(**options):
        await asyncio.sleep(0)  # let the other run take its turn
        return await delete_events(**options)

    monkeypatch.setattr(store, 'delete_events', interleaved)
    summaries = await asyncio.gather(*(run_lifecycle([store], plan_run(settings, now=NOW),
                                                     logger) for _ in range(2)))

    ran = [summary.stores[0] for summary in summaries]
    assert sum(store_run.purge_deleted for store_run in ran) == 30
    assert sum(store_run.retention_deleted for store_run in ran) == 4
    assert all(0 < store_run.purge_deleted < 30 for store_run in ran)
    assert [store_run.purged for store_run in ran] == [[GONE], [GONE]]
    assert await stored_keys(store, GONE) == []
    assert await stored_keys(store, STAYS) == sorted(theirs[:6])
    assert (await store.get_installation(GONE)).purged_at == NOW


async def test_a_run_stopped_midway_is_finished_by_the_next(fake_backend, monkeypatch, logger):
    monkeypatch.setattr(fake_backend, 'delete_batch', 2)
    store = the_store()
    settings = load_settings(CONFIG)
    await fill(store, GONE, days_ago(*range(40, 49), now=NOW))
    await purge_due(store)
    delete_events = store.delete_events
    batches = []

    async def stopped_in_the_third_batch(**options):
        batches.append(options)
        if len(batches) == 3:
            raise asyncio.CancelledError  # what the runner's timeout or a shutdown does
        return await delete_events(**options)

    monkeypatch.setattr(store, 'delete_events', stopped_in_the_third_batch)
    with pytest.raises(asyncio.CancelledError):
        await run_lifecycle([store], plan_run(settings, now=NOW), logger)
    assert len(await stored_keys(store, GONE)) == 5
    monkeypatch.setattr(store, 'delete_events', delete_events)

    summary = await run_lifecycle([store], plan_run(settings, now=NOW + timedelta(hours=1)),
                                  logger)
    assert (summary.stores[0].purged, summary.stores[0].purge_deleted) == ([GONE], 5)
    assert await stored_keys(store, GONE) == []


async def test_the_output_lists_at_most_ten_installations(fake_backend, logger):
    store = the_store()
    gone = [f'EIN-0000-0000-{n:04d}' for n in range(12)]
    for installation_id in gone:
        await store.save_installation(InstallationRecord(
            installation_id, 'uninstalled', NOW - timedelta(days=31),
            purge_after=NOW - timedelta(days=1)))
    summary = await run_lifecycle([store], plan_run(load_settings(CONFIG), now=NOW), logger)
    assert (f'purged 12 installations ({", ".join(gone[:10])} and 2 more); 0 events deleted '
            'by purges') in summary.describe()


def test_the_parameter_parser_refuses_a_schedule_that_is_not_an_object():
    with pytest.raises(InvalidRequest):
        data_lifecycle.scheduled_installation({'parameter': 3.5})
    assert data_lifecycle.scheduled_installation({'id': 'EFS-1'}) is None
    assert data_lifecycle.scheduled_installation(
        {'parameter': {'installation_id': ' EIN-1 '}}) == 'EIN-1'
