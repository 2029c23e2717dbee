"""The local portal's lifecycle controls: install or uninstall an installation (Connect
then sends the extension an `installation_status_change` event), and run a schedulable
method of the extension now (a scheduled task, as when its schedule triggers); with what
each did, newest first. Enough to watch a purge happen on the Events page.

What a button does is `PortalActions.deliver`: by default the emulation delivers the item
and the line says what the runner answered; the demo passes its own, which also reads the
storage back (what the job deleted).
"""
import html
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Protocol, Sequence, Tuple

from connect.eaas.core.proto import Schedulable

from localdev.connect_emulator.events import Item

if TYPE_CHECKING:
    from localdev.connect_emulator.server import ConnectEmulator, Delivery


class PortalActions(Protocol):
    async def deliver(self, item: Item) -> str:
        """Deliver the item; one line saying what happened, for the page."""

#: Status -> the button that leaves it.
STATUS_BUTTONS = {'installed': ('uninstalled', 'Uninstall'),
                  'uninstalled': ('installed', 'Install again')}
#: How many actions the page lists.
ACTIONS_SHOWN = 20


class EmulatorActions:
    """The buttons without the demo: deliver through the emulation, say what it answered."""

    def __init__(self, emulator: 'ConnectEmulator'):
        self.emulator = emulator

    async def deliver(self, item: Item) -> str:
        return describe(await self.emulator.deliver(item))


def describe(delivery: 'Delivery') -> str:
    """'EIN-... uninstalled: success', 'Data lifecycle: success (output ...)'."""
    item = delivery.event
    subject = (delivery.served or {}).get('name') or item.subject
    what = f'{subject} {getattr(item, "status", "run")}'
    if delivery.not_sent:
        return f'{what}: {delivery.not_sent}'
    results = ', '.join(result.result for result in delivery.results)
    # A job's output may take several lines: the page shows it on one.
    output = ' '.join(' '.join(result.message or '' for result in delivery.results).split())
    return f'{what}: {results}' + (f' ({output})' if output else '')


def run_label(schedulable: Schedulable, installation_id: Optional[str] = None) -> str:
    """'Run the data lifecycle job now' (for one installation: '... for EIN-... now')."""
    name = schedulable.name[:1].lower() + schedulable.name[1:]
    name = name[:-4] if name.endswith(' job') else name
    return f'Run the {name} job ' + (f'for {installation_id} ' if installation_id else '') + 'now'


def _run_form(schedulable: Schedulable, installation_id: Optional[str] = None) -> str:
    hidden = (f'<input type="hidden" name="installation_id" '
              f'value="{html.escape(installation_id)}">') if installation_id else ''
    return (f'<form method="post" action="/schedules/run" class="inline">'
            f'<input type="hidden" name="method" value="{html.escape(schedulable.method)}">'
            f'{hidden}<button type="submit">{html.escape(run_label(schedulable, installation_id))}'
            f'</button></form>')


def _status_form(installation: Mapping[str, Any]) -> str:
    status, label = STATUS_BUTTONS.get(installation.get('status'), STATUS_BUTTONS['installed'])
    return (f'<form method="post" action="/installations/{html.escape(installation["id"])}'
            f'/status" class="inline"><input type="hidden" name="status" value="{status}">'
            f'<button type="submit">{label}</button></form>')


def _since(installation: Mapping[str, Any]) -> str:
    status = installation.get('status') or 'installed'
    at = (installation.get('events') or {}).get(status, {}).get('at', '')
    return f'{html.escape(status)}' + (f' since {html.escape(at)}' if at else '')


def controls_section(
    *, schedulables: Sequence[Schedulable], installations: Sequence[Mapping[str, Any]],
    actions: Sequence[Tuple[str, str]],
) -> str:
    """The lifecycle section of the portal's page; `actions` are (time, line), newest first."""
    if schedulables:
        jobs = ' '.join(_run_form(schedulable) for schedulable in schedulables)
    else:
        jobs = ('<span class="note">The extension declares no schedulable method '
                '(<code>@schedulable</code>): nothing to run.</span>')
    rows = ''.join(
        f'<tr><td>{html.escape(installation["id"])}</td><td>{_since(installation)}</td>'
        f'<td>{_status_form(installation)} '
        f'{" ".join(_run_form(item, installation["id"]) for item in schedulables)}</td></tr>'
        for installation in installations
    ) or '<tr><td colspan="3">No installation yet: deliver an event of one.</td></tr>'
    done: List[str] = [f'<li>{html.escape(at)}: {html.escape(line)}</li>'
                       for at, line in actions[:ACTIONS_SHOWN]]
    return (
        '<style>form.inline { display: inline; } #jobs button { margin-right: 8px; }</style>'
        '<h2>Lifecycle</h2>'
        '<p class="note">Each button acts as Connect does: an install or uninstall changes the '
        'installation and sends the extension an <code>installation_status_change</code> '
        'event; a job runs now, as when its schedule triggers. Open the Events page of an '
        'installation to see what a purge or the retention left.</p>'
        f'<p id="jobs">{jobs}</p>'
        '<table id="lifecycle"><thead><tr><th>Installation</th><th>Status</th>'
        f'<th>Actions</th></tr></thead><tbody>{rows}</tbody></table>'
        f'<h3>What the buttons did</h3><ol id="actions" reversed>{"".join(done)}</ol>'
    )
