// The chat playground: any key, any model it may use, streamed answers, a Stop button.
import './style.css';
import { sseEvents } from './sse.js';
import { bindSecret, errorMessage, el } from './ui.js';

const $ = (id) => document.getElementById(id);
const getKey = bindSecret($('key'), $('remember'), 'sluice.key');
const status = (text, bad = false) => {
  $('status').textContent = text;
  $('status').classList.toggle('bad', bad);
};

let history = [];      // {role, content} sent with the next request
let running = null;    // the AbortController of the stream in progress

function authHeaders() {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function loadModels() {
  const select = $('model');
  const keep = select.value || localStorage.getItem('sluice.model');
  try {
    const res = await fetch('../v1/models', { headers: authHeaders() });
    if (!res.ok) throw new Error(await errorMessage(res));
    const list = (await res.json()).data ?? [];
    select.replaceChildren(...list.map((m) => el('option', { value: m.id, textContent: m.id })));
    if (list.some((m) => m.id === keep)) select.value = keep;
    status(list.length ? `${list.length} model(s)` : 'this key may use no model', !list.length);
  } catch (e) {
    status(`models: ${e.message}`, true);
  }
}

function addMessage(role, text) {
  const content = el('div', { class: 'content', textContent: text });
  const box = el('div', { class: `msg ${role}`, dataset: { role } }, el('div', { class: 'who', textContent: role }));
  const parts = { box, content, reasoning: null, reasoningText: null, meta: el('div', { class: 'meta' }) };
  if (role === 'assistant') {
    parts.reasoningText = el('pre', { class: 'reasoning-text' });
    parts.reasoning = el('details', { class: 'reasoning', hidden: true }, el('summary', { textContent: 'Reasoning' }),
      parts.reasoningText);
    box.append(parts.reasoning);
  }
  box.append(content, parts.meta);
  $('messages').append(box);
  box.scrollIntoView({ block: 'end' });
  return parts;
}

function setRunning(ctrl) {
  running = ctrl;
  $('send').disabled = !!ctrl;
  $('stop').disabled = !ctrl;
}

async function send(text) {
  const model = $('model').value;
  if (!model) {
    status('pick a model first (Load lists the models of this key)', true);
    return;
  }
  localStorage.setItem('sluice.model', model);
  const conv = history;  // "New conversation" mid-stream starts another array; this answer stays out of it
  conv.push({ role: 'user', content: text });
  addMessage('user', text);
  const out = addMessage('assistant', '');
  out.box.classList.add('streaming');
  const messages = [];
  const system = $('system').value.trim();
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...conv);
  const body = {
    model, messages, stream: true, stream_options: { include_usage: true },
    temperature: Number($('temperature').value),
    max_tokens: Number($('max-tokens').value) || undefined,
  };
  const ctrl = new AbortController();
  setRunning(ctrl);
  status('streaming…');
  let answer = '', finish = null, usage = null;
  try {
    const res = await fetch('../v1/chat/completions', {
      method: 'POST', signal: ctrl.signal,
      headers: { 'Content-Type': 'application/json', ...authHeaders() },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(await errorMessage(res));
    for await (const data of sseEvents(res.body, ctrl.signal)) {
      if (data === '[DONE]') break;
      const ev = JSON.parse(data);
      if (ev.error) throw new Error(ev.error.message || 'upstream error');
      if (ev.usage) usage = ev.usage;
      for (const ch of ev.choices ?? []) {
        const d = ch.delta ?? {};
        if (d.reasoning_content) {
          out.reasoning.hidden = false;
          out.reasoningText.textContent += d.reasoning_content;
        }
        if (d.content) {
          answer += d.content;
          out.content.textContent = answer;
        }
        if (ch.finish_reason) finish = ch.finish_reason;
      }
      out.box.scrollIntoView({ block: 'end' });
    }
    const bits = [finish && `finish: ${finish}`, usage && `${usage.prompt_tokens} + ${usage.completion_tokens} tokens`];
    out.meta.textContent = bits.filter(Boolean).join(' · ');
    status('done');
  } catch (e) {
    if (ctrl.signal.aborted) {
      out.meta.textContent = 'stopped';
      out.box.classList.add('stopped');
      status('stopped');
    } else {
      out.meta.textContent = e.message;
      out.box.classList.add('failed');
      status(e.message, true);
    }
  } finally {
    out.box.classList.remove('streaming');
    if (answer) conv.push({ role: 'assistant', content: answer });
    else conv.pop(); // nothing came back: the question can be asked again
    setRunning(null);
  }
}

$('compose').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || running) return;
  $('prompt').value = '';
  send(text);
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('compose').requestSubmit();
  }
});
$('stop').addEventListener('click', () => running?.abort());
$('clear').addEventListener('click', () => {
  running?.abort();
  history = [];
  $('messages').replaceChildren();
  status('');
});
$('temperature').addEventListener('input', () => { $('temperature-value').textContent = $('temperature').value; });
$('load-models').addEventListener('click', loadModels);
$('key').addEventListener('change', loadModels);
if (getKey()) loadModels();
