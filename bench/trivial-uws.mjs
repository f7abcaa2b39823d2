// The baseline: a uWS server that answers every request with a constant body
// (after reading the request body, as any server must). Prints {"port":N}.
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const uws = require(`@trufflesuite/uws-js-unofficial/binaries/uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
// The same bytes the sink sends for a 16-token chat completion, so that the
// comparison is of the work per request, not of the payload size.
const body =
  '{"id":"chatcmpl-sink1","object":"chat.completion","created":1795608406,"model":"benchmark-model","system_fingerprint":null,' +
  '"choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog.The quick brown fox jumps over","refusal":null},' +
  '"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":256,"completion_tokens":16,"total_tokens":272}}';
uws
  .App()
  .any('/*', (res) => {
    res.onAborted(() => {});
    res.onData((_chunk, last) => {
      if (last) res.cork(() => res.writeHeader('content-type', 'application/json').end(body));
    });
  })
  .listen('127.0.0.1', 0, (s) => {
    process.stdout.write(JSON.stringify({ port: uws.us_socket_local_port(s) }) + '\n');
  });
process.on('SIGTERM', () => process.exit(0));
