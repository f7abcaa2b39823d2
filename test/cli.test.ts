import t from 'tap';
import { runCli } from './helpers/sink.js';

t.test('help exits 0 and lists the components', async (t) => {
  const r = await runCli(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /sink/);
  const s = await runCli(['sink', '--help']);
  t.equal(s.code, 0);
  t.match(s.stdout, /--wait-ms/);
});

t.test('an unknown command or a bad flag: one line, exit 2', async (t) => {
  for (const args of [['bogus'], ['sink', '--nope'], ['sink', '--port', 'abc'], ['sink', '--error-rate', '2'], ['sink', '--error-rate', '0.6', '--drop-rate', '0.6']]) {
    const r = await runCli(args);
    t.equal(r.code, 2, `${args.join(' ')} exits 2`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line (${r.stderr.trim()})`);
    t.match(r.stderr, /^error: /);
  }
  const port = await runCli(['sink', '--port', 'abc']);
  t.match(port.stderr, /--port/, 'the message names the flag');
});
