// The Events page: this installation's stored events, newest first, and a request's timeline.
// Every call is root-relative (/api/...): the same file works in the Connect portal and on the
// local emulation, where the installation comes from the call context, never from the page.
import { fastApiTableAdapter } from './vendor/connect-ui-toolkit/31.1.0/tools/fastApi/index.js';

const ROWS_PER_PAGE = 20;
const REFRESH_MILLISECONDS = 5000;
// How long the portal has to answer the toolkit's $created before the page says it is alone.
const PORTAL_WAIT_MILLISECONDS = 3000;

const $ = (id) => document.getElementById(id);
const events = fastApiTableAdapter('/api/events', ROWS_PER_PAGE);
let filters = {};

// -- the portal bridge: optional, the page works without it -------------------------------

async function connectToPortal() {
  const host = $('host');
  if (window.top === window) {
    host.textContent = 'Opened outside the Connect portal.';
  }
  try {
    const toolkit = await import('./vendor/connect-ui-toolkit/28.0.0/index.js');
    const createApp = toolkit.default;
    // Registers <ui-card>; resolves once the portal has answered (never when alone).
    const ready = createApp({ 'ui-card': toolkit.Card });
    if (window.top !== window) {
      const timeout = new Promise((resolve) => setTimeout(resolve, PORTAL_WAIT_MILLISECONDS, 'timeout'));
      const outcome = await Promise.race([ready.then(() => 'ready'), timeout]);
      host.textContent = outcome === 'ready'
        ? 'Shown in the portal.'
        : 'Embedded in a page that is not the Connect portal.';
    }
  } catch (error) {
    // Without the toolkit <ui-card> stays a plain element: its content still shows.
    host.textContent = `Without the Connect UI toolkit (${error.message}).`;
  }
}

// -- helpers ---------------------------------------------------------------------------------

function formatTime(value) {
  if (!value) return '-';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function badge(status) {
  const element = document.createElement('span');
  element.className = `badge badge-${status}`;
  element.textContent = status;
  return element;
}

function cell(content) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? '-';
  return td;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && (body.detail ?? body.error ?? body.errors);
    const text = typeof detail === 'string' ? detail : JSON.stringify(detail ?? response.statusText);
    const error = new Error(`${response.status}: ${text}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(message) {
  const error = $('error');
  error.hidden = !message;
  error.textContent = message || '';
}

// -- the table -------------------------------------------------------------------------------

function renderRows(page) {
  const rows = $('rows');
  rows.replaceChildren();
  if (!page.items.length) {
    const empty = document.createElement('tr');
    empty.className = 'placeholder';
    empty.append(cell('No events stored for this installation' +
      (Object.keys(filters).length ? ' with these filters.' : ' yet.')));
    empty.firstChild.colSpan = 8;
    rows.append(empty);
  }
  for (const item of page.items) {
    const row = document.createElement('tr');
    row.dataset.key = item.key;
    const link = document.createElement('a');
    link.href = `#${encodeURIComponent(item.request_id)}`;
    link.className = 'request';
    link.textContent = item.request_id;
    // The link sets the hash: a timeline can be bookmarked and reopened (see the end).
    link.addEventListener('click', () => openTimeline(item.request_id));
    row.append(
      cell(link), cell(badge(item.status)), cell(formatTime(item.updated)),
      cell(item.asset_id), cell(item.product_id), cell(item.account_id),
      cell(String(item.delivery_count)), cell(formatTime(item.last_received_at)),
    );
    rows.append(row);
  }
  const first = page.total ? (page.page - 1) * ROWS_PER_PAGE + 1 : 0;
  const last = (page.page - 1) * ROWS_PER_PAGE + page.items.length;
  $('range').textContent = page.total ? `${first}-${last} of ${page.total}` : '0 events';
  $('previous').disabled = page.page <= 1;
  $('next').disabled = page.page * ROWS_PER_PAGE >= page.total;
}

async function show(loading) {
  try {
    renderRows(await loading);
    showError('');
  } catch (error) {
    showError(`Events could not be read: ${error.message}`);
  }
}

// -- the timeline ----------------------------------------------------------------------------

async function openTimeline(requestId) {
  const section = $('timeline');
  const steps = $('timeline-steps');
  section.hidden = false;
  $('timeline-title').textContent = `${requestId}: loading…`;
  steps.replaceChildren();
  try {
    const timeline = await getJson(`/api/requests/${encodeURIComponent(requestId)}/timeline`);
    const count = timeline.events.length;
    $('timeline-title').textContent =
      `${count} status${count === 1 ? '' : 'es'} of ${timeline.request_id}, oldest first:`;
    for (const step of timeline.events) {
      const item = document.createElement('li');
      const when = document.createElement('span');
      when.textContent = ` updated ${formatTime(step.updated)}, received ` +
        `${formatTime(step.received_at)}, delivered ${step.delivery_count}x` +
        (step.delivery_count > 1 ? ` (last ${formatTime(step.last_received_at)})` : '');
      item.append(badge(step.status), when);
      steps.append(item);
    }
  } catch (error) {
    $('timeline-title').textContent = error.status === 404
      ? `${requestId}: no event of this request in this installation.`
      : `${requestId}: the timeline could not be read (${error.message}).`;
  }
  section.scrollIntoView({ block: 'nearest' });
}

// -- storage health --------------------------------------------------------------------------

// "Reading from sql (sqlite:///...): reachable.", then each other backend the events are written to.
function describeBackend(backend) {
  return backend.reachable
    ? `${backend.description}: reachable`
    : `${backend.description}: UNREACHABLE (${backend.error || 'no answer'})`;
}

async function showStorage() {
  const line = $('storage');
  try {
    const storage = await getJson('/api/storage');
    const [read, ...others] = storage.backends;
    let text = `Reading from ${describeBackend(read)}.`;
    if (others.length) text += ` Also written to ${others.map(describeBackend).join('; ')}.`;
    line.textContent = text;
    line.dataset.state = storage.backends.every((backend) => backend.reachable) ? 'ok' : 'degraded';
  } catch (error) {
    line.textContent = `Storage: cannot be checked (${error.message}).`;
    line.dataset.state = 'error';
  }
}

// -- wiring ----------------------------------------------------------------------------------

// The filters live in the form and in the address (?status=...&request_id=...), so a
// filtered view can be bookmarked or linked to.
function applyFilters() {
  filters = {};
  const status = $('status').value;
  const requestId = $('request-id').value.trim();
  if (status) filters.status = status;
  if (requestId) filters.request_id = requestId;
  const query = new URLSearchParams(filters).toString();
  history.replaceState(null, '', `${location.pathname}${query ? `?${query}` : ''}${location.hash}`);
  return show(events.filter(filters));
}

$('filters').addEventListener('submit', (submit) => {
  submit.preventDefault();
  applyFilters();
  showStorage();
});
$('status').addEventListener('change', () => $('filters').requestSubmit());
$('previous').addEventListener('click', () => show(events.previous()));
$('next').addEventListener('click', () => show(events.next()));
$('timeline-close').addEventListener('click', () => {
  $('timeline').hidden = true;
  history.replaceState(null, '', location.pathname + location.search);
});

const asked = new URLSearchParams(location.search);
$('status').value = asked.get('status') || '';
$('request-id').value = asked.get('request_id') || '';
connectToPortal();
showStorage();
applyFilters();
if (location.hash.length > 1) openTimeline(decodeURIComponent(location.hash.slice(1)));
// New events keep arriving: reread the page being looked at, with its filters.
setInterval(() => { if (!document.hidden) show(events.load()); }, REFRESH_MILLISECONDS);
