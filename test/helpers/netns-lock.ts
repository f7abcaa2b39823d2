// Tests that make namespaces run in parallel files, and every netns setup
// removes what dead runs left (the product's behaviour). The test of that
// removal holds this lock from its SIGKILL to the next run's check, and the
// other tests take it around their setup, so none removes its leftovers first.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const LOCK = join(tmpdir(), 'sluice-netns-tests.lock');

/** Whether the lock's owner lives (a lock without its pid file yet is being taken: alive). */
function ownerAlive(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
  } catch {
    return true;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Takes the lock (waiting for it up to `timeoutMs`); returns its release. */
export async function netnsLock(timeoutMs = 180_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      let released = false;
      return () => {
        if (released) return;
        released = true;
        rmSync(LOCK, { recursive: true, force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!ownerAlive()) rmSync(LOCK, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`${LOCK} is held by another test for too long`);
      else await new Promise((r) => setTimeout(r, 100));
    }
  }
}
