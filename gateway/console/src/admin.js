// The admin page: consumers and usage (with a plot sampled while the page is open), keys
// (issue, shown once; revoke), upstream and engine-worker state, cache and guard counters.
import './style.css';
import { bindSecret, errorMessage, el } from './ui.js';
import { drawPlot, short } from './plot.js';

const $ = (id) => document.getElementById(id);
const getToken = bindSecret($('token'), $('remember'), 'sluice.admin_token');
const SAMPLE_MS = Number(new URLSearchParams(location.search).get('sample_ms')) || 5000;
const KEEP = 240;
const samples = new Map();   // consumer -> [{t, v}]
let timer = null;

const status = (text, bad = false) => {
  $('status').textContent = text;
  $('status').classList.toggle('bad', bad);
};

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${getToken()}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(await errorMessage(res));
  return path === '/metrics' ? res.text() : res.json();
}

const when = (s) => (s ? new Date(s * 1000).toISOString().replace('T', ' ').slice(0, 19) : '—');
const td = (text, cls) => el('td', { textContent: text ?? '—', ...(cls ? { class: cls } : {}) });

function showUsage(list) {
  const now = Date.now();
  const select = $('issue-consumer');
  const chosen = select.value;
  select.replaceChildren(...list.map((u) => el('option', { value: u.consumer, textContent: u.consumer })));
  if (chosen) select.value = chosen;
  $('usage').tBodies[0].replaceChildren(...list.map((u) => {
    const q = u.limit !== undefined;
    const frac = q && u.limit ? Math.min(1, (u.used + u.reserved) / u.limit) : 0;
    const bar = el('meter', { min: 0, max: 1, value: frac, low: 0.7, high: 0.9, optimum: 0, title: `${Math.round(frac * 100)}%` });
    if (q) {
      const s = samples.get(u.consumer) ?? [];
      s.push({ t: now, v: u.used });
      if (s.length > KEEP) s.shift();
      samples.set(u.consumer, s);
    }
    return el('tr', { dataset: { consumer: u.consumer } }, td(u.consumer), td(q ? u.window : 'no quota'),
      td(q ? u.used : null), td(q ? u.reserved : null), td(q ? u.limit : null), td(q ? u.remaining : null),
      td(q ? u.requests : null), el('td', {}, q ? bar : ''));
  }));
  const names = list.filter((u) => u.limit !== undefined);
  drawPlot($('plot'), names.map((u) => ({ name: u.consumer, points: samples.get(u.consumer) ?? [], limit: u.limit })));
  $('plot-legend').replaceChildren(...names.map((u, i) =>
    el('span', { class: `chip series-${i % 6}`, textContent: `${u.consumer} (${short(u.used)} / ${short(u.limit)})` })));
}

function showKeys(list) {
  list.sort((a, b) => Number(a.revoked) - Number(b.revoked) || b.created - a.created);
  $('keys').tBodies[0].replaceChildren(...list.map((k) => {
    const revoke = el('button', { type: 'button', textContent: 'Revoke', class: 'danger', disabled: k.revoked,
      onclick: () => revokeKey(k) });
    return el('tr', { dataset: { id: k.id }, class: k.revoked ? 'revoked' : '' }, td(k.id), td(k.consumer), td(k.name),
      td(`${k.prefix}…`), td(when(k.created)), td(k.expires ? when(k.expires) : 'never'),
      td(k.revoked ? 'revoked' : 'active', k.revoked ? 'bad' : 'good'), el('td', {}, revoke));
  }));
}

function showUpstreams(list) {
  $('upstreams').tBodies[0].replaceChildren(...list.map((u) => {
    const workers = (u.workers ?? []).map((w) => `#${w.index} ${w.state} (pid ${w.pid}, ${w.outstanding} running, ${w.restarts} restarts)`);
    return el('tr', { dataset: { upstream: u.name } }, td(u.name), td(u.type),
      td(u.circuit ?? 'unused', u.circuit === 'open' ? 'bad' : u.circuit === 'closed' ? 'good' : ''), td(u.requests ?? 0),
      td(u.failures ?? 0), td(workers.join('; ') || (u.type === 'engine' ? 'none' : '—')));
  }));
}

const COUNTERS = /^sluice_(requests_total|prompt_tokens_total|completion_tokens_total|cache_[a-z_]+|guard_[a-z_]+|fallbacks_total)$/;

function showCounters(text) {
  const sums = new Map();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || !COUNTERS.test(m[1])) continue;
    sums.set(m[1], (sums.get(m[1]) ?? 0) + Number(m[3]));
  }
  const rows = [...sums].sort(([a], [b]) => a.localeCompare(b));
  $('counters').tBodies[0].replaceChildren(...rows.map(([k, v]) => el('tr', {}, td(k), td(String(v)))));
}

async function refresh() {
  if (!getToken()) {
    status('type the admin token (admin.token_env on the gateway) and Connect');
    return;
  }
  try {
    const [usage, keys, ups, metrics] = await Promise.all([api('GET', '/admin/v1/usage'), api('GET', '/admin/v1/keys'),
      api('GET', '/admin/v1/upstreams'), api('GET', '/metrics').catch(() => '')]);
    showUsage(usage.data ?? []);
    showKeys(keys.data ?? []);
    showUpstreams(ups.upstreams ?? []);
    showCounters(metrics);
    status(`updated ${new Date().toLocaleTimeString()}`);
    document.body.classList.add('connected');
  } catch (e) {
    status(e.message, true);
  }
}

async function revokeKey(k) {
  if (!confirm(`Revoke key ${k.id} (${k.consumer}${k.name ? `, ${k.name}` : ''})? Clients using it are refused within a second.`)) return;
  try {
    await api('DELETE', `/admin/v1/keys/${encodeURIComponent(k.id)}`);
    status(`revoked ${k.id}`);
  } catch (e) {
    status(`revoke: ${e.message}`, true);
  }
  refresh();
}

$('issue').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = { consumer: $('issue-consumer').value };
  if ($('issue-name').value.trim()) body.name = $('issue-name').value.trim();
  if ($('issue-expires').value.trim()) body.expires_in = $('issue-expires').value.trim();
  try {
    const k = await api('POST', '/admin/v1/keys', body);
    $('new-key-consumer').textContent = k.consumer;
    $('new-key-value').textContent = k.key;
    $('new-key').hidden = false;
    $('issue-name').value = '';
    status(`issued ${k.id}`);
  } catch (err) {
    status(`issue: ${err.message}`, true);
  }
  refresh();
});
$('new-key-copy').addEventListener('click', () => navigator.clipboard?.writeText($('new-key-value').textContent));
$('new-key-hide').addEventListener('click', () => {
  $('new-key-value').textContent = '';
  $('new-key').hidden = true;
});
$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  $('token').dispatchEvent(new Event('change'));
  clearInterval(timer);
  timer = setInterval(refresh, SAMPLE_MS);
  refresh();
});
if (getToken()) $('login').requestSubmit();
else refresh();
