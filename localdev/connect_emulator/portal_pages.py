"""The HTML of the local portal's own pages: the list of installations, and the frame that
shows one extension page the way the Connect portal does.

The frame host answers the connect-ui-toolkit bridge as the portal does: the page announces
itself (`$created`, with its slot id), the host sends `$init`, and the page then reports its
size (`$size`), which sets the frame's height. The host records what it heard in the
frame's `data-heard` attribute (not shown: it means nothing to a user), so a browser test
can see that the page's toolkit talked to it.
"""
import html
import json
from typing import Any, List, Mapping, Sequence, Tuple

Link = Tuple[str, str]  # (label, URL)

STYLE = """
body { font: 14px/1.5 Roboto, system-ui, sans-serif; margin: 0; color: #212121; }
body { background: #f5f5f5; }
header { background: #1565c0; color: #fff; padding: 12px 24px; }
header a { color: #fff; }
header h1 { font-size: 18px; font-weight: 500; margin: 0; }
main { padding: 16px 24px; }
table { border-collapse: collapse; background: #fff; }
th, td { text-align: left; padding: 8px 16px; border-bottom: 1px solid #e0e0e0; }
a { color: #1565c0; }
iframe { width: 100%; min-height: 240px; border: 0; background: #fff; display: block; }
.note { color: #616161; font-size: 13px; }
"""


def _page(title: str, header: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n'
        f'<body><header><h1>{header}</h1></header><main>{body}</main></body></html>\n'
    )


def _links(links: Sequence[Link]) -> str:
    return ' '.join(f'<a href="{html.escape(url)}">{html.escape(label)}</a>'
                    for label, url in links) or '-'


def index_page(
    *, extension: str, environment: str, worker_ready: bool, page_labels: Sequence[str],
    installations: Sequence[Tuple[Mapping[str, Any], List[Link]]], extra: str = '',
) -> str:
    """The installations, each with its pages (in a portal frame, and on their own); then
    `extra` (HTML: the lifecycle controls)."""
    if worker_ready:
        worker = (f"The runner's web worker is connected; pages declared: "
                  f'{html.escape(", ".join(page_labels) or "none")}.')
    else:
        worker = ('No runner web worker is connected (does the extension declare a '
                  '<code>webapp</code> entry point?).')
    rows = ''.join(
        f'<tr><td>{html.escape(installation["id"])}</td>'
        f'<td>{html.escape(installation.get("owner", {}).get("name", ""))} '
        f'({html.escape(installation.get("owner", {}).get("id", ""))})</td>'
        f'<td>{_links(links)}</td></tr>'
        for installation, links in installations
    ) or '<tr><td colspan="3">No installation yet: deliver an event of one.</td></tr>'
    body = (
        f'<p>Extension {html.escape(extension)}, environment {html.escape(environment)}. '
        f'{worker}</p>'
        f'<p class="note">The pages of each installation are served on an origin of their '
        f'own, as to a user of its account: every call there reaches the extension as a web '
        f'task with the context of that installation. A page opens in a portal frame, or on '
        f'its own ("standalone").</p>'
        f'<table><thead><tr><th>Installation</th><th>Account</th><th>Pages</th></tr></thead>'
        f'<tbody>{rows}</tbody></table>{extra}'
    )
    return _page('Local Connect portal', 'Local Connect portal', body)


def frame_page(
    *, portal_url: str, installation: Mapping[str, Any], label: str, page_url: str,
) -> str:
    """One extension page in a frame, with the toolkit bridge answered."""
    owner = installation.get('owner', {})
    header = (f'<a href="{html.escape(portal_url)}">Local Connect portal</a> &rsaquo; '
              f'{html.escape(owner.get("name", ""))} ({html.escape(installation["id"])}) '
              f'&rsaquo; {html.escape(label)}')
    body = (
        f'<iframe id="slot" name="extension-slot" src="{html.escape(page_url)}"></iframe>'
        f'<p class="note"><a href="{html.escape(page_url)}">Open the page on its own</a></p>'
        f'<script>{BRIDGE_SCRIPT % json.dumps(page_url)}</script>'
    )
    return _page(f'{label} - {installation["id"]}', header, body)


# `%s` is the page URL, as a JSON string: only its origin may talk to the host.
BRIDGE_SCRIPT = """
(() => {
  const frame = document.getElementById('slot');
  const origin = new URL(%s, location.href).origin;
  const heard = [];
  // A link to the frame with #fragment opens the page at that fragment (a timeline).
  if (location.hash) frame.src = frame.src.split('#')[0] + location.hash;
  window.addEventListener('message', (message) => {
    if (message.source !== frame.contentWindow || message.origin !== origin) return;
    const { $id, events } = message.data || {};
    if (!events) return;
    for (const [name, value] of Object.entries(events)) {
      if (!heard.includes(name)) heard.push(name);
      if (name === '$created') {
        frame.contentWindow.postMessage({ $id, events: { $init: {} } }, origin);
      } else if (name === '$size' && value && value.height) {
        frame.style.height = `${Math.ceil(value.height) + 16}px`;
      }
    }
    frame.dataset.heard = heard.join(' ');
  });
})();
"""
