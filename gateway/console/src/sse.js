// Server-sent events from a fetch() body: yields the data of each event, as a string.
// Events end at a blank line; several data: lines of one event join with "\n".
export async function* sseEvents(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '', cr = '';   // cr: a '\r' that ended a read (its '\n' may come in the next)
  try {
    for (;;) {
      if (signal?.aborted) return;
      const { value, done } = await reader.read();
      if (done) break;
      let text = cr + decoder.decode(value, { stream: true });
      cr = text.endsWith('\r') ? '\r' : '';
      if (cr) text = text.slice(0, -1);
      buf += text.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const data = dataOf(buf.slice(0, end));
        buf = buf.slice(end + 2);
        if (data !== null) yield data;
      }
    }
    const data = dataOf(buf + (cr + decoder.decode()).replace(/\r\n?/g, '\n'));
    if (data !== null) yield data;
  } finally {
    reader.releaseLock?.();
  }
}

function dataOf(event) {
  const lines = event.split('\n').filter((l) => l.startsWith('data:'));
  if (!lines.length) return null;
  return lines.map((l) => l.slice(l[5] === ' ' ? 6 : 5)).join('\n');
}
