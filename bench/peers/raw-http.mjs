// The limit of the machine: node:http reading the body and answering a fixed JSON-RPC result.
import { createServer } from 'node:http';

const ANSWER = JSON.stringify({
  result: { content: [{ type: 'text', text: 'ok' }] },
  jsonrpc: '2.0',
  id: 1,
});

const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(ANSWER);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.address().port}/mcp` })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
