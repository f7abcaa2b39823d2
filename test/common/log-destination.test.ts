// The log destination on a full non-blocking pipe: it waits for the reader
// (sleeping, not spinning), loses and repeats nothing once the reader reads
// again, and at exit gives up after exitWaitMs, counting what it dropped.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

const CHILD = fileURLToPath(new URL('./fixtures/log-child.ts', import.meta.url));
const LINES = 100_000; // ~10 MB: far more than a pipe holds, less than the 16 MiB backlog
/** Linux reports /proc times in USER_HZ, 100 per second, whatever the kernel's HZ. */
const USER_HZ = 100;

/** CPU time (user + system) a process has used so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5), counted after the command name.
  return ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU the process burns over about a second of wall time, against that wall time. */
async function stallCpu(pid: number): Promise<{ cpu: number; wall: number }> {
  const c0 = cpuMs(pid);
  const w0 = performance.now();
  await sleep(1000);
  return { cpu: cpuMs(pid) - c0, wall: performance.now() - w0 };
}

interface Child {
  proc: ChildProcess;
  next(pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Whether such a message has arrived already. */
  has(pred: (m: Record<string, unknown>) => boolean): boolean;
  /** Starts reading the child's stdout; resolves with all of it once it closes. */
  read(): Promise<string>;
}

function start(t: Test, exitWaitMs: number): Child {
  const proc = fork(CHILD, [String(LINES), String(exitWaitMs)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  // A spinning child would never finish on its own.
  const guard = setTimeout(() => proc.kill('SIGKILL'), 30_000);
  t.teardown(() => {
    clearTimeout(guard);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const messages: Record<string, unknown>[] = [];
  const waiters: Array<() => void> = [];
  proc.on('message', (m: Record<string, unknown>) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    async next(pred) {
      for (;;) {
        const m = messages.find(pred);
        if (m) return m;
        const more = new Promise<void>((r) => waiters.push(r));
        await Promise.race([more, exited]);
        if (proc.exitCode !== null || proc.signalCode !== null) {
          const late = messages.find(pred);
          if (late) return late;
          throw new Error(`child exited (${proc.exitCode ?? proc.signalCode}) before the message`);
        }
      }
    },
    has: (pred) => messages.some(pred),
    read() {
      const chunks: Buffer[] = [];
      proc.stdout!.on('data', (d: Buffer) => chunks.push(d));
      return new Promise((resolve) => proc.stdout!.once('close', () => resolve(Buffer.concat(chunks).toString('utf8'))));
    },
  };
}

/** Complete lines' sequence numbers, in the order they arrived, and the lines that are not whole log lines. */
function parse(out: string): { seqs: number[]; corrupt: number } {
  const lines = out.split('\n');
  lines.pop(); // after the last newline: empty, or a line cut short by the give-up
  const seqs: number[] = [];
  let corrupt = 0;
  for (const l of lines) {
    try {
      seqs.push((JSON.parse(l) as { seq: number }).seq);
    } catch {
      corrupt++;
    }
  }
  return { seqs, corrupt };
}

t.test('a reader that stops, then reads again: no spinning while it is stuck, every line arrives once, in order', async (t) => {
  const c = start(t, 30_000);
  const w = await c.next((m) => m.written === true);
  t.equal(w.nonBlocking, true, 'the pipe is non-blocking, as stdout is in the gateway');

  const running = await stallCpu(c.proc.pid!);
  t.ok(running.cpu < running.wall / 4, `while running, stuck for ${running.wall.toFixed(0)} ms: ${running.cpu} ms of CPU`);

  c.proc.send({ exit: true });
  await c.next((m) => m.flushing === true);
  const exiting = await stallCpu(c.proc.pid!);
  t.ok(exiting.cpu < exiting.wall / 4, `at exit (flushSync), stuck for ${exiting.wall.toFixed(0)} ms: ${exiting.cpu} ms of CPU`);

  t.notOk(
    c.has((m) => 'lost' in m),
    'flushSync has not returned before the reader reads again (the pipe was full)',
  );
  const out = await c.read();
  const m = await c.next((m) => 'lost' in m);
  t.equal(m.lost, 0, 'nothing lost');
  const { seqs: got, corrupt } = parse(out);
  t.equal(corrupt, 0, 'no line cut or spliced');
  t.equal(got.length, LINES, 'every line, none twice');
  t.ok(
    got.every((s, i) => s === i),
    'in order',
  );
});

t.test('a reader that never reads again: flushSync gives up after exitWaitMs and counts the rest as dropped', async (t) => {
  const c = start(t, 500);
  await c.next((m) => m.written === true);
  c.proc.send({ exit: true });
  const m = await c.next((m) => 'lost' in m);
  const lost = m.lost as number;
  t.ok(lost > 0, `${lost} lines counted as dropped`);
  t.ok((m.cpuMs as number) < (m.wallMs as number) / 4, `waited ${(m.wallMs as number).toFixed(0)} ms on ${(m.cpuMs as number).toFixed(1)} ms of CPU`);
  // What did reach the pipe is still there to read after the child is gone.
  const { seqs: got, corrupt } = parse(await c.read());
  t.equal(corrupt, 0, 'no line cut or spliced');
  t.equal(got.length + lost, LINES, 'written + dropped = all the lines');
  t.ok(
    got.every((s, i) => s === i),
    'what was written is a prefix, in order, none twice',
  );
});
