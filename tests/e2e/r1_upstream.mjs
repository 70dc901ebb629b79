// A tiny OpenAI-compatible upstream that answers like DeepSeek-R1 behind vLLM: streamed
// reasoning_content deltas, then content deltas. Prints its port once listening.
import http from 'node:http';

const reasoning = ['The user', ' greets me;', ' I should greet back.'];
const content = ['Hi', ' there', '!'];

const server = http.createServer((req, res) => {
  let raw = '';
  req.on('data', (d) => { raw += d; });
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'r1-model', object: 'model', owned_by: 'test' }] }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not here', type: 'invalid_request_error', param: null, code: null } }));
      return;
    }
    const body = JSON.parse(raw || '{}');
    const base = { id: 'chatcmpl-r1', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: body.model };
    const chunk = (delta, finish = null) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(chunk({ role: 'assistant', content: '' }));
    for (const r of reasoning) res.write(chunk({ reasoning_content: r, content: null }));
    for (const c of content) res.write(chunk({ content: c }));
    res.write(chunk({}, 'stop'));
    if (body.stream_options?.include_usage) {
      res.write(`data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 7, completion_tokens: 9, total_tokens: 16 } })}\n\n`);
    }
    res.end('data: [DONE]\n\n');
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.on('SIGTERM', () => process.exit(0));
