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

t.test('a group command without its command, hex numbers, and waits past what a timer takes: one line, exit 2', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /sluice needs a command: sink, gateway, keys, loadgen/],
    [['loadgen'], /loadgen needs a command: run, serve, merge/],
    [['keys'], /keys needs a command/],
    [['loadgen', 'bogus'], /unknown command 'bogus'/],
    [['sink', '--port', '0x10'], /--port/],
    [['sink', '--output-tokens', '0b11'], /--output-tokens/],
    [['sink', '--wait-ms', '1e10'], /--wait-ms/],
    [['sink', '--itl-ms', '3000000000'], /--itl-ms/],
    [['sink', '--drain-timeout-ms', '3000000000'], /--drain-timeout-ms/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(args);
    t.equal(r.code, 2, `sluice ${args.join(' ')}: exit 2`);
    t.equal(r.stderr.trim().split('\n').length, 1, `sluice ${args.join(' ')}: one line (${r.stderr.trim()})`);
    t.match(r.stderr, message);
  }
  const help = await runCli(['help', 'sink']);
  t.equal(help.code, 0, 'help <command> still shows that command\'s help');
  t.match(help.stdout, /--wait-ms/);
});
