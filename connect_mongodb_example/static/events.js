// The Events page: this installation's stored events, newest first, a request's timeline, and
// the whole of them as a download. Every call is root-relative (/api/...): the same file works
// in the Connect portal and on the local emulation, where the installation comes from the call
// context, never from the page. What the table shows comes from /api/schema, which the web
// application derives from the record's declarations: no column or status is written here.

const ROWS_PER_PAGE = 20;
const REFRESH_MILLISECONDS = 5000;

const $ = (id) => document.getElementById(id);
let schema = null;
let columns = [];
let filters = {};
// The page on show: the URL it was read from, its number, and its Link header's next/prev.
let current = { url: null, number: 1, links: {}, total: 0 };
let reads = 0;

// -- the portal bridge: optional, the page works without it -------------------------------

async function connectToPortal() {
  try {
    const toolkit = await import('./vendor/connect-ui-toolkit/28.0.0/index.js');
    // Registers <ui-card>, announces the page to the portal and reports its size.
    toolkit.default({ 'ui-card': toolkit.Card });
    document.body.dataset.toolkit = 'loaded';
  } catch (error) {
    // Without the toolkit <ui-card> stays a plain element: its content still shows.
    document.body.dataset.toolkit = 'unavailable';
    const notice = $('toolkit');
    notice.hidden = false;
    notice.textContent = 'The Connect UI toolkit could not be loaded: the events are all here, ' +
      `but the portal cannot fit its frame to the page (${error.message}).`;
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

function requestLink(requestId) {
  const link = document.createElement('a');
  link.href = `#${encodeURIComponent(requestId)}`;
  link.className = 'request';
  link.textContent = requestId;
  // The link sets the hash: a timeline can be bookmarked and reopened (see the end).
  link.addEventListener('click', () => openTimeline(requestId));
  return link;
}

// How a value is shown: by kind, but for the fields that do more than show their value (and
// `updated`, Connect's time of the change, kept as the text Connect sent: it is in the key).
const BY_FIELD = { request_id: requestLink, status: badge, updated: formatTime };
const BY_KIND = {
  time: formatTime,
  count: (value) => (value === null || value === undefined ? '-' : String(value)),
  text: (value) => value ?? '-',
};

function cell(content, field) {
  const td = document.createElement('td');
  if (field) td.dataset.field = field;
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? '-';
  return td;
}

function apiError(response, body) {
  const detail = body && (body.detail ?? body.error ?? body.errors);
  const text = typeof detail === 'string' ? detail : JSON.stringify(detail ?? response.statusText);
  const error = new Error(`${response.status}: ${text}`);
  error.status = response.status;
  return error;
}

async function call(url) {
  const response = await fetch(url, { headers: { Accept: 'application/json' } });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw apiError(response, body);
  return { response, body };
}

// relation -> URL of a Link header: `</api/events?...>; rel="next", </api/events?...>; rel="prev"`.
function parseLinks(header) {
  const links = {};
  for (const [, url, relation] of (header || '').matchAll(/<([^>]*)>;\s*rel="([^"]+)"/g)) {
    links[relation] = url;
  }
  return links;
}

function showError(message) {
  const error = $('error');
  error.hidden = !message;
  error.textContent = message || '';
}

// -- what the page is built from -------------------------------------------------------------

function build(pageSchema) {
  schema = pageSchema;
  const fields = Object.fromEntries(schema.fields.map((field) => [field.name, field]));
  columns = schema.columns.map((name) => fields[name]);
  $('columns').replaceChildren(...columns.map((field) => {
    const heading = document.createElement('th');
    heading.textContent = field.label;
    heading.dataset.field = field.name;
    return heading;
  }));
  const select = $('status');
  const asked = select.dataset.asked || '';
  select.replaceChildren(new Option('all', ''), ...schema.statuses.map((status) => new Option(status)));
  select.value = schema.statuses.includes(asked) ? asked : '';
  const downloads = $('downloads');
  for (const format of schema.export_formats) {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.format = format;
    button.textContent = format.toUpperCase();
    button.addEventListener('click', () => download(format));
    downloads.append(' ', button);
  }
  downloads.hidden = !schema.export_formats.length;
}

// -- the table -------------------------------------------------------------------------------

function renderRows(items) {
  const rows = $('rows');
  rows.replaceChildren();
  if (!items.length) {
    const empty = document.createElement('tr');
    empty.className = 'placeholder';
    empty.append(cell('No events stored for this installation' +
      (Object.keys(filters).length ? ' with these filters.' : ' yet.')));
    empty.firstChild.colSpan = columns.length;
    rows.append(empty);
  }
  for (const item of items) {
    const row = document.createElement('tr');
    row.dataset.key = item.key;
    for (const field of columns) {
      const show = BY_FIELD[field.name] || BY_KIND[field.kind] || BY_KIND.text;
      row.append(cell(show(item[field.name]), field.name));
    }
    rows.append(row);
  }
  const first = (current.number - 1) * ROWS_PER_PAGE + 1;
  const last = first + items.length - 1;
  $('range').textContent = items.length ? `${first}-${last} of ${current.total}`
    : `${current.total} events`;
  $('previous').disabled = current.number <= 1;
  $('next').disabled = !current.links.next;
}

function firstPage() {
  return `/api/events?${new URLSearchParams({ ...filters, limit: ROWS_PER_PAGE })}`;
}

// Pages after the first are read from the cursors of the Link header, never by offset: a deep
// page costs what the first does, and keeps its events while new ones arrive.
async function showPage(url, number) {
  const read = ++reads;
  try {
    const { response, body } = await call(url);
    if (read !== reads) return; // a later read is under way: it shows its page
    if (!body.length && number > 1) {
      // This page's events are gone (deleted by the data policy): back to the first.
      await showPage(firstPage(), 1);
      return;
    }
    current = {
      url,
      number,
      links: parseLinks(response.headers.get('Link')),
      total: Number(response.headers.get('X-Total-Count') || 0),
    };
    renderRows(body);
    showError('');
  } catch (error) {
    if (read === reads) showError(`Events could not be read: ${error.message}`);
  }
}

function nextPage() {
  if (current.links.next) showPage(current.links.next, current.number + 1);
}

function previousPage() {
  if (current.number > 2 && current.links.prev) showPage(current.links.prev, current.number - 1);
  else showPage(firstPage(), 1);
}

// -- the download ----------------------------------------------------------------------------

// The export comes in parts (each answer travels through Connect as one message): read them
// one after the other, as the Link header leads, then save them as one file.
async function download(format) {
  const note = $('download');
  const buttons = [...$('downloads').querySelectorAll('button')];
  buttons.forEach((button) => { button.disabled = true; });
  note.hidden = false;
  note.textContent = `Downloading ${format.toUpperCase()}…`;
  let url = `/api/events/export?${new URLSearchParams({ format })}`;
  const parts = [];
  let events = 0;
  let name = `events.${format}`;
  let type = '';
  try {
    while (url) {
      const response = await fetch(url);
      if (!response.ok) throw apiError(response, await response.json().catch(() => null));
      if (!parts.length) {
        const disposition = /filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '');
        if (disposition) [, name] = disposition;
        type = response.headers.get('Content-Type') || '';
      }
      parts.push(await response.blob());
      events += Number(response.headers.get('X-Export-Events') || 0);
      note.textContent = `Downloading ${format.toUpperCase()}… ${events} events so far.`;
      url = parseLinks(response.headers.get('Link')).next;
    }
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob(parts, { type }));
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
    note.textContent = `Downloaded ${events} event${events === 1 ? '' : 's'} as ${name}.`;
    note.dataset.events = String(events);
  } catch (error) {
    note.textContent = `The download failed: ${error.message}`;
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
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
    const { body: timeline } = await call(`/api/requests/${encodeURIComponent(requestId)}/timeline`);
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

// -- storage health and the data policy ------------------------------------------------------

// "Reading from sql (sqlite:///...): reachable.", then each other backend the events are written to.
function describeBackend(backend) {
  return backend.reachable
    ? `${backend.description}: reachable`
    : `${backend.description}: UNREACHABLE (${backend.error || 'no answer'})`;
}

async function showStorage() {
  const line = $('storage');
  try {
    const { body: storage } = await call('/api/storage');
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

function describePolicy(policy) {
  let text = policy.retention_days
    ? `events are deleted ${policy.retention_days} day${policy.retention_days === 1 ? '' : 's'} ` +
      'after they are first received'
    : 'events are kept until deleted';
  text += policy.on_uninstall === 'purge'
    ? `; if the extension is uninstalled, they are purged ${policy.purge_grace_days} ` +
      `day${policy.purge_grace_days === 1 ? '' : 's'} later (a reinstall before then keeps them).`
    : '; if the extension is uninstalled, they are kept.';
  if (policy.purge_after) {
    text += ` This installation was uninstalled: its events will be purged after ${formatTime(policy.purge_after)}.`;
  } else if (policy.purged_at) {
    text += ` Its events were purged on ${formatTime(policy.purged_at)}.`;
  }
  return text;
}

async function showPolicy() {
  const line = $('policy');
  try {
    const { body: policy } = await call('/api/installation');
    line.textContent = `Data policy: ${describePolicy(policy)}`;
    line.dataset.due = policy.purge_after ? 'purge' : '';
  } catch (error) {
    line.textContent = `Data policy: cannot be read (${error.message}).`;
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
  return showPage(firstPage(), 1);
}

async function start() {
  const asked = new URLSearchParams(location.search);
  $('status').dataset.asked = asked.get('status') || '';
  $('request-id').value = asked.get('request_id') || '';
  connectToPortal();
  showStorage();
  showPolicy();
  if (location.hash.length > 1) openTimeline(decodeURIComponent(location.hash.slice(1)));
  try {
    build((await call('/api/schema')).body);
  } catch (error) {
    showError(`The page could not be set up: ${error.message}`);
    return;
  }
  $('filters').addEventListener('submit', (submit) => {
    submit.preventDefault();
    applyFilters();
    showStorage();
    showPolicy();
  });
  $('status').addEventListener('change', () => $('filters').requestSubmit());
  $('previous').addEventListener('click', previousPage);
  $('next').addEventListener('click', nextPage);
  await applyFilters();
  // New events keep arriving: reread the page being looked at (the same cursor), with its filters.
  setInterval(() => { if (!document.hidden) showPage(current.url, current.number); }, REFRESH_MILLISECONDS);
}

$('timeline-close').addEventListener('click', () => {
  $('timeline').hidden = true;
  history.replaceState(null, '', location.pathname + location.search);
});
start();
