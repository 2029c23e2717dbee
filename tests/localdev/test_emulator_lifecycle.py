"""What the emulation does with a status change or a schedule run the extension did not
declare: Connect would send no task, and neither does the emulation. (Those it declared go
to the real runner: tests/e2e/test_lifecycle_e2e.py.)"""
import pytest
from connect.eaas.core.proto import Schedulable, SetupRequest

from localdev.connect_emulator import EventFileError, InstallationChange, ScheduleRun


def set_up(emulator, subscriptions, schedulables=()):
    """As if the extension's events worker had sent this setup request."""
    emulator.channel.setup_requests.append(SetupRequest(
        event_subscriptions=subscriptions,
        schedulables=[Schedulable(method=method, name=method.title(), description='')
                      for method in schedulables],
    ))


async def test_an_installation_changes_status_even_when_the_extension_is_not_told(
    emulator, installation,
):
    set_up(emulator, {'asset_purchase_request_processing': ['pending']})

    delivery = await emulator.deliver(InstallationChange(installation, 'uninstalled'))

    assert delivery.results == []
    assert delivery.not_sent == 'not sent: no subscription to installation_status_change'
    assert delivery.served == emulator.objects.installation(installation['id'])
    assert delivery.served['status'] == 'uninstalled'
    assert emulator.deliveries == [delivery]


async def test_nothing_is_run_for_an_extension_that_declares_nothing_to_schedule(emulator):
    set_up(emulator, {})

    delivery = await emulator.deliver(ScheduleRun())

    assert delivery.results == []
    assert delivery.not_sent == 'not run: the extension declares no @schedulable method'
    assert emulator.objects.schedules() == []


@pytest.mark.parametrize(('run', 'problem'), [
    (ScheduleRun(source='10.json'), '10.json: the extension declares several schedulable '
                                    'methods (run_a, run_b): name one as "method"'),
    (ScheduleRun('run_c', source='11.json'), '11.json: the extension declares no schedulable '
                                             'method run_c (it declares: run_a, run_b)'),
])
async def test_a_schedule_run_must_name_one_declared_method(emulator, run, problem):
    set_up(emulator, {}, schedulables=['run_a', 'run_b'])

    with pytest.raises(EventFileError) as caught:
        await emulator.deliver(run)

    assert str(caught.value) == problem
