// Server-sent events from a fetch() body: yields the data of each event, as a string.
// Events end at a blank line; several data: lines of one event join with "\n".
export async function* sseEvents(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for (;;) {
      if (signal?.aborted) return;
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const data = dataOf(buf.slice(0, end));
        buf = buf.slice(end + 2);
        if (data !== null) yield data;
      }
    }
    const data = dataOf(buf + decoder.decode());
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
