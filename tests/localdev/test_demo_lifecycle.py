"""Which stored events the settings call on a turn of the demo to delete, and what a turn
deleted, from records and snapshots made here."""
import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from connect_mongodb_example.settings import load_settings
from localdev.connect_emulator import Delivery, InstallationChange, ScheduleRun, TaskResult
from localdev.demo_lifecycle import (
    PURGE,
    RETENTION,
    InstallationState,
    Turn,
    due_deletions,
    installation_states,
    turn_label,
)
from localdev.readback import Deletion
from tests.support.records import purchase_record

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def settings(**variables):
    return load_settings({'DATABASE_URL': 'sqlite:///x', **variables})


def record(purchase_request, request_id, installation_id, days_ago=0):
    installation = {'id': installation_id, 'owner': {'id': 'VA-1'}} if installation_id else None
    return purchase_record(purchase_request(request_id, 'pending'), installation=installation,
                           received_at=NOW - timedelta(days=days_ago))


@pytest.fixture
def records(purchase_request):
    return [record(purchase_request, 'PR-1', 'EIN-GONE'),
            record(purchase_request, 'PR-2', 'EIN-KEPT', days_ago=400),
            record(purchase_request, 'PR-3', None, days_ago=400),
            record(purchase_request, 'PR-4', 'EIN-KEPT')]


GONE = {'EIN-GONE': InstallationState('uninstalled', NOW - timedelta(days=2))}


@pytest.mark.parametrize(('variables', 'states', 'only', 'due'), [
    ({}, GONE, None, {}),  # keep, and no retention: nothing is ever due
    ({'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '2'}, GONE, None, {'PR-1': PURGE}),
    ({'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '3'}, GONE, None, {}),  # not yet
    ({'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '0'},
     {'EIN-GONE': InstallationState('installed', NOW)}, None, {}),  # installed again
    ({'EVENTS_RETENTION_DAYS': '365'}, GONE, None, {'PR-2': RETENTION, 'PR-3': RETENTION}),
    ({'EVENTS_RETENTION_DAYS': '365', 'ON_UNINSTALL': 'purge', 'PURGE_GRACE_DAYS': '0'}, GONE,
     'EIN-KEPT', {'PR-2': RETENTION}),  # a job for one installation
])
def test_due_deletions_follow_the_settings(records, variables, states, only, due):
    found = due_deletions(records, states, settings(**variables), now=NOW,
                          only_installation=only)

    assert {key.split('/')[-1].split(':')[0]: why for key, why in found.items()} == due


def test_only_status_changes_the_extension_answered_count(installation):
    served = dict(installation, status='uninstalled',
                  events={'uninstalled': {'at': '2026-12-01T10:00:00.250+00:00'}})
    told = Delivery(InstallationChange(installation, 'uninstalled'),
                    [TaskResult('TQ-1', installation['id'], installation['id'], 'success')],
                    served=served)
    failed = dataclasses.replace(told, results=[
        TaskResult('TQ-2', installation['id'], installation['id'], 'retry')])
    not_sent = dataclasses.replace(told, results=[], not_sent='not sent: ...')

    assert installation_states([told]) == {installation['id']: InstallationState(
        'uninstalled', datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=timezone.utc))}
    assert installation_states([failed, not_sent]) == {}


def test_a_turn_tells_what_it_deleted_was_due_and_what_it_left(records, installation):
    before = {'sql': {item.key: item for item in records}, 'mongodb': {}}
    after = {'sql': {**before['sql'], records[0].key: None, records[3].key: None},
             'mongodb': {}}
    job = Delivery(ScheduleRun(), [], served={'name': 'Data lifecycle'})
    turn = Turn(job, turn_label(job), before, after,
                may={records[0].key: PURGE, records[1].key: RETENTION},
                must={records[1].key: RETENTION}, problems={'mongodb': 'cannot read back'})

    assert turn.label == 'the Data lifecycle job'
    assert turn.deleted('sql') == [records[0], records[3]]
    assert turn.not_due('sql') == [records[3]]
    assert turn.left('sql') == [records[1]]
    assert turn.deleted('mongodb') == []
    assert turn.deletions() == {
        ('sql', records[0].key): Deletion('the Data lifecycle job', PURGE),
        ('sql', records[3].key): Deletion('the Data lifecycle job', None),
    }
    change = Delivery(InstallationChange(installation, 'uninstalled'), [])
    assert turn_label(change) == f'the uninstall of {installation["id"]}'
