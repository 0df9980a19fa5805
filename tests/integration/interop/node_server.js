// Interop backend (tests/integration/test_interop.py): Node's own `http` server as people run it
// behind a gateway, with a short keep-alive: it closes a kept-alive connection idle for
// KEEP_ALIVE_MS (default 1000 ms, i.e. `server.keepAliveTimeout = 1000`). Answers every request
// with a small body.
'use strict';
const http = require('http');

const body = 'hello from node\n';
const server = http.createServer((req, res) => {
  req.resume();  // drain any request body
  res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
});
server.keepAliveTimeout = Number(process.env.KEEP_ALIVE_MS || 1000);
server.listen(Number(process.env.PORT), '0.0.0.0', () => {
  console.log(`node ${process.version} listening on ${process.env.PORT}, ` +
              `keepAliveTimeout ${server.keepAliveTimeout} ms`);
});
process.on('SIGTERM', () => process.exit(0));
