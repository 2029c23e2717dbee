"""What an installation's status change becomes (`handle_installation_status_change`): the
record every store keeps, with the uninstall policy applied, and the task result."""
import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from connect.eaas.core.enums import ResultType

from connect_mongodb_example import storage
from connect_mongodb_example.errors import (
    ConfigurationError,
    InvalidRequest,
    StorageRejected,
    StorageUnavailable,
)
from connect_mongodb_example.installation_record import InstallationRecord
from connect_mongodb_example.settings import load_settings
from connect_mongodb_example.storage.registry import stores_for
from connect_mongodb_example.variables import ConfigReader, Variable
from tests.support.fake_store import FakeEventStore
from tests.support.lifecycle import ENVIRONMENT, deliver_installation, installation_object

MINE = 'EIN-8436-7221-1234'
UNINSTALLED_AT = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
REINSTALLED_AT = UNINSTALLED_AT + timedelta(days=10)
FAKE = {'STORAGE_BACKENDS': 'fake'}
PURGE = {**FAKE, 'ON_UNINSTALL': 'purge'}


def the_store(config):
    [store] = stores_for(load_settings(config))
    return store


async def test_an_install_is_kept_with_nothing_planned(fake_backend, logger, caplog):
    at = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
    with caplog.at_level(logging.INFO):
        response = await deliver_installation(installation_object(MINE, 'installed', at),
                                              PURGE, logger)
    assert response.status == ResultType.SUCCESS
    assert await the_store(PURGE).get_installation(MINE) == InstallationRecord(
        installation_id=MINE, status='installed', changed_at=at, account_id='VA-000-001',
        environment_id=ENVIRONMENT, purge_after=None, purged_at=None)
    assert f'Installation {MINE} installed (account VA-000-001)' in caplog.text


async def test_an_uninstall_under_keep_plans_no_purge(fake_backend, logger, caplog):
    with caplog.at_level(logging.INFO):
        response = await deliver_installation(
            installation_object(MINE, 'uninstalled', UNINSTALLED_AT), FAKE, logger)
    assert response.status == ResultType.SUCCESS
    stored = await the_store(FAKE).get_installation(MINE)
    assert (stored.status, stored.changed_at, stored.purge_after) == (
        'uninstalled', UNINSTALLED_AT, None)
    assert f'Installation {MINE} uninstalled; its events are kept (ON_UNINSTALL=keep)' \
        in caplog.text


@pytest.mark.parametrize(('grace', 'days'), [(None, 30), ('0', 0), ('7', 7), ('3650', 3650)])
async def test_an_uninstall_under_purge_is_purged_after_the_grace(
    fake_backend, logger, caplog, grace, days,
):
    config = {**PURGE, 'PURGE_GRACE_DAYS': grace} if grace else PURGE
    with caplog.at_level(logging.INFO):
        response = await deliver_installation(
            installation_object(MINE, 'uninstalled', UNINSTALLED_AT), config, logger)
    assert response.status == ResultType.SUCCESS
    stored = await the_store(config).get_installation(MINE)
    assert stored.purge_after == UNINSTALLED_AT + timedelta(days=days)
    assert stored.purged_at is None
    when = (UNINSTALLED_AT + timedelta(days=days)).isoformat().replace('+00:00', 'Z')
    assert f'Installation {MINE} uninstalled; its events will be purged after {when}' \
        in caplog.text


async def test_a_reinstall_within_the_grace_cancels_the_purge(fake_backend, logger):
    await deliver_installation(installation_object(MINE, 'uninstalled', UNINSTALLED_AT),
                               PURGE, logger)
    response = await deliver_installation(
        installation_object(MINE, 'installed', REINSTALLED_AT), PURGE, logger)
    assert response.status == ResultType.SUCCESS
    stored = await the_store(PURGE).get_installation(MINE)
    assert (stored.status, stored.changed_at, stored.purge_after) == (
        'installed', REINSTALLED_AT, None)


async def test_an_uninstall_delivered_after_the_reinstall_does_not_bring_the_purge_back(
    fake_backend, logger, caplog,
):
    await deliver_installation(installation_object(MINE, 'installed', REINSTALLED_AT),
                               PURGE, logger)
    with caplog.at_level(logging.INFO):
        response = await deliver_installation(
            installation_object(MINE, 'uninstalled', UNINSTALLED_AT), PURGE, logger)
    assert response.status == ResultType.SUCCESS
    stored = await the_store(PURGE).get_installation(MINE)
    assert (stored.status, stored.purge_after) == ('installed', None)
    assert 'a later change is already stored (installed at 2026-03-11T09:30:00Z)' in caplog.text


async def test_redeliveries_in_any_order_and_at_once_settle_on_the_latest(fake_backend, logger):
    changes = [installation_object(MINE, ('installed', 'uninstalled')[n % 2],
                                   UNINSTALLED_AT + timedelta(hours=n))
               for n in range(8)]
    deliveries = changes * 3
    random.Random(5).shuffle(deliveries)
    responses = await asyncio.gather(*(deliver_installation(change, PURGE, logger)
                                       for change in deliveries))
    assert {response.status for response in responses} == {ResultType.SUCCESS}
    stored = await the_store(PURGE).get_installation(MINE)
    latest = UNINSTALLED_AT + timedelta(hours=7)
    assert (stored.status, stored.changed_at, stored.purge_after) == (
        'uninstalled', latest, latest + timedelta(days=30))
    assert len(await the_store(PURGE).list_installations()) == 1


async def test_the_time_of_the_status_orders_changes_else_the_update_time(fake_backend, logger):
    installation = installation_object(MINE, 'uninstalled', UNINSTALLED_AT)
    del installation['events']['uninstalled']
    installation['events']['updated']['at'] = '2026-03-02T08:00:00Z'
    assert (await deliver_installation(installation, PURGE, logger)).status == \
        ResultType.SUCCESS
    stored = await the_store(PURGE).get_installation(MINE)
    assert stored.changed_at == datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(('at', 'moment'), [
    ('2026-03-01T11:30:00+02:00', UNINSTALLED_AT),
    ('2026-03-01T09:30:00Z', UNINSTALLED_AT),
    ('2026-03-01T09:30:00', UNINSTALLED_AT),
    # Milliseconds, as every backend keeps them (MongoDB's dates have no finer unit).
    ('2026-03-01T09:30:00.123987+00:00', UNINSTALLED_AT.replace(microsecond=123_000)),
])
async def test_times_are_read_in_utc_to_the_millisecond(fake_backend, logger, at, moment):
    installation = installation_object(MINE, 'uninstalled', UNINSTALLED_AT)
    installation['events']['uninstalled']['at'] = at
    await deliver_installation(installation, PURGE, logger)
    assert (await the_store(PURGE).get_installation(MINE)).changed_at == moment


def without(path):
    def change(installation):
        *parents, name = path
        for parent in parents:
            installation = installation[parent]
        del installation[name]
    return change


def setting(path, value):
    def change(installation):
        *parents, name = path
        for parent in parents:
            installation = installation[parent]
        installation[name] = value
    return change


@pytest.mark.parametrize(('change', 'problem'), [
    pytest.param(lambda i: ['EIN-1'], 'must be a JSON object, got list', id='not-an-object'),
    pytest.param(without(['id']), "has no 'id'", id='no-id'),
    pytest.param(setting(['id'], '  '), "has no 'id'", id='blank-id'),
    pytest.param(setting(['id'], 'EIN-' + 'x' * 200), 'longer than 128', id='long-id'),
    pytest.param(setting(['status'], 'installing'), "status 'installing'", id='status'),
    pytest.param(without(['events']), 'events.uninstalled.at or events.updated.at',
                 id='no-times'),
    pytest.param(setting(['events', 'uninstalled', 'at'], 'yesterday'),
                 "events.uninstalled.at is not an ISO 8601 time: 'yesterday'", id='bad-time'),
    pytest.param(setting(['owner', 'id'], 7), "'owner.id'", id='bad-owner'),
])
async def test_an_installation_object_that_cannot_be_kept_fails_with_its_reason(
    fake_backend, logger, caplog, change, problem,
):
    installation = installation_object(MINE, 'uninstalled', UNINSTALLED_AT)
    installation = change(installation) or installation
    response = await deliver_installation(installation, PURGE, logger)
    assert response.status == ResultType.FAIL
    assert problem in response.output
    assert response.output in caplog.text
    assert fake_backend.installations == {}


@pytest.mark.parametrize(('variable', 'value'), [
    ('ON_UNINSTALL', 'delete'), ('ON_UNINSTALL', 'purge later'), ('PURGE_GRACE_DAYS', '-1'),
    ('PURGE_GRACE_DAYS', 'thirty'), ('PURGE_GRACE_DAYS', '3651'),
    ('EVENTS_RETENTION_DAYS', '-5'), ('EVENTS_RETENTION_DAYS', 'a year'),
])
async def test_bad_lifecycle_configuration_is_raised_naming_the_variable(
    fake_backend, logger, caplog, variable, value,
):
    config = {**PURGE, variable: value}
    with pytest.raises(ConfigurationError) as error:
        await deliver_installation(installation_object(MINE, 'uninstalled', UNINSTALLED_AT),
                                   config, logger)
    assert error.value.variable == variable
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f'Configuration problem, installation {MINE} uninstalled not stored '
                      f'yet: {error.value}']
    assert fake_backend.installations == {}


async def test_unavailable_storage_reschedules_then_the_change_is_kept(
    fake_backend, logger, caplog,
):
    config = {**PURGE, 'RETRY_COUNTDOWN_SECONDS': '60'}
    store = the_store(config)
    store.fail_with = StorageUnavailable('fake: connection refused')
    installation = installation_object(MINE, 'uninstalled', UNINSTALLED_AT)
    response = await deliver_installation(installation, config, logger)
    assert (response.status, response.countdown) == (ResultType.RESCHEDULE, 60)
    assert await store.get_installation(MINE) is None
    assert (f'Storage unavailable, installation {MINE} uninstalled rescheduled in 60s: '
            'fake: connection refused') in caplog.text
    store.fail_with = None
    assert (await deliver_installation(installation, config, logger)).status == \
        ResultType.SUCCESS
    assert (await store.get_installation(MINE)).status == 'uninstalled'


async def test_a_refusing_store_is_raised_and_one_that_cannot_keep_it_fails(
    fake_backend, logger,
):
    store = the_store(PURGE)
    installation = installation_object(MINE, 'uninstalled', UNINSTALLED_AT)
    store.fail_with = StorageRejected('fake: 403 forbidden')
    with pytest.raises(StorageRejected):
        await deliver_installation(installation, PURGE, logger)
    store.fail_with = InvalidRequest('fake: the document is too large')
    response = await deliver_installation(installation, PURGE, logger)
    assert (response.status, response.output) == (ResultType.FAIL,
                                                  'fake: the document is too large')


@dataclass(frozen=True)
class SecondSettings:
    name: str


class SecondFakeStore(FakeEventStore):
    """Another backend name, with data of its own: two stores to save into."""

    name = 'fake2'
    variables = (Variable('FAKE2_STORE_NAME', 'Which second fake store.', default='second'),)

    @classmethod
    def parse_settings(cls, reader: ConfigReader) -> SecondSettings:
        return SecondSettings(reader.text(cls.variables[0]))


async def test_every_configured_store_keeps_the_change(fake_backend, monkeypatch, logger):
    monkeypatch.setitem(storage.BACKENDS, 'fake2', SecondFakeStore)
    config = {**PURGE, 'STORAGE_BACKENDS': 'fake,fake2'}
    first, second = stores_for(load_settings(config))
    second.fail_with = StorageUnavailable('fake2: down')
    installation = installation_object(MINE, 'uninstalled', UNINSTALLED_AT)
    assert (await deliver_installation(installation, config, logger)).status == \
        ResultType.RESCHEDULE
    second.fail_with = None
    assert (await deliver_installation(installation, config, logger)).status == \
        ResultType.SUCCESS
    assert await first.get_installation(MINE) == await second.get_installation(MINE)
    assert (await second.get_installation(MINE)).purge_after == \
        UNINSTALLED_AT + timedelta(days=30)
