// The chat page's SSE reader (gateway/console/src/sse.js) on awkward byte streams: events
// split anywhere (inside a UTF-8 character too), CRLF lines, comments, multi-line data, a
// last event without its blank line. Prints TAP.
import { sseEvents } from '../../gateway/console/src/sse.js';

let n = 0, failed = 0;
function is(got, want, name) {
  n++;
  const pass = JSON.stringify(got) === JSON.stringify(want);
  if (!pass) failed++;
  console.log(`${pass ? 'ok' : 'not ok'} ${n} - ${name}`);
  if (!pass) console.log(`# got:  ${JSON.stringify(got)}\n# want: ${JSON.stringify(want)}`);
}

function streamOf(bytes, step) {
  let off = 0;
  return new ReadableStream({
    pull(ctrl) {
      if (off >= bytes.length) return ctrl.close();
      ctrl.enqueue(bytes.slice(off, off + step));
      off += step;
    },
  });
}
async function collect(text, step) {
  const out = [];
  for await (const d of sseEvents(streamOf(new TextEncoder().encode(text), step))) out.push(d);
  return out;
}

const text = 'data: {"a":"héllo 🌊"}\n\n: keep-alive comment\n\nevent: x\r\ndata: line1\r\ndata:line2\r\n\r\n'
  + 'data: [DONE]\n\n';
const want = ['{"a":"héllo 🌊"}', 'line1\nline2', '[DONE]'];
for (const step of [1, 2, 3, 7, 1000]) is(await collect(text, step), want, `events whole with ${step}-byte reads`);
is(await collect('data: last without blank line', 4), ['last without blank line'], 'a last event without its blank line');
is(await collect('', 1), [], 'an empty body: no events');
const ctrl = new AbortController();
ctrl.abort();
const got = [];
for await (const d of sseEvents(streamOf(new TextEncoder().encode(text), 1), ctrl.signal)) got.push(d);
is(got, [], 'an aborted signal stops reading');
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
