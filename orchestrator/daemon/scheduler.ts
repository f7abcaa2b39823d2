// Schedules: a cron expression (croner: 5 fields, or 6 with seconds) and a
// matrix; each time it fires, a run of that matrix is queued, and when it
// completes it is compared with the schedule's previous completed run.
import { Cron } from 'croner';
import type { DaemonStore, ScheduleRecord } from './store.js';

export class Scheduler {
  private readonly jobs = new Map<string, Cron>();

  constructor(
    private readonly store: DaemonStore,
    /** Called after a schedule queued a run. */
    private readonly queued: (runId: string) => void,
  ) {}

  /** Every schedule of the store (at start). */
  loadAll(): void {
    for (const s of this.store.listSchedules()) this.add(s);
  }

  add(s: ScheduleRecord): void {
    // protect: a fire while the previous callback runs is skipped (the callback is quick anyway).
    const job = new Cron(s.cron, { protect: true }, () => {
      if (this.store.schedule(s.id) === null) {
        this.remove(s.id);
        return;
      }
      const run = this.store.createRun(s.matrix, s.label, s.id);
      this.store.setScheduleRun(s.id, run.id);
      this.queued(run.id);
    });
    this.jobs.set(s.id, job);
  }

  nextRun(id: string): Date | null {
    return this.jobs.get(id)?.nextRun() ?? null;
  }

  remove(id: string): void {
    this.jobs.get(id)?.stop();
    this.jobs.delete(id);
  }

  stop(): void {
    for (const j of this.jobs.values()) j.stop();
    this.jobs.clear();
  }
}
