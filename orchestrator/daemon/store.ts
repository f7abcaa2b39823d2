// The daemon's history: runs and schedules in SQLite under the data
// directory, each run's results, tables and report as files beside it
// (runs/<id>/). Every change is written before it is acted on, so a restart
// or a crash (SIGKILL) loses nothing: a run that was under way is marked
// interrupted with the cells it finished, and queued runs start again.
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Matrix } from '../matrix/types.js';
import type { Results } from '../results.js';

export type Provider = 'local' | 'netns' | 'gcp';
export const PROVIDERS: Provider[] = ['local', 'netns', 'gcp'];

export type RunStatus = 'queued' | 'running' | 'completed' | 'failed' | 'canceled' | 'interrupted';
export const RUN_STATUSES: RunStatus[] = ['queued', 'running', 'completed', 'failed', 'canceled', 'interrupted'];

export interface RunProgress {
  /** Cells (or sweeps) finished, and planned. */
  done: number;
  total: number;
  /** The cell under way. */
  label: string | null;
  /** Estimated share of the run's time done, 0–1. */
  fraction: number;
}

export interface RunRecord {
  id: string;
  object: 'run';
  seq: number;
  label: string | null;
  status: RunStatus;
  matrix: Matrix;
  /** The same for every run of the same matrix: how the history groups runs for trends. */
  matrixKey: string;
  /** Where its roles run (sluice bench --provider). */
  provider: Provider;
  scheduleId: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  progress: RunProgress | null;
  /** A scheduled run, compared with the schedule's previous completed run. */
  comparedWith: string | null;
  regressions: number | null;
  /** Each system's throughput as a fraction of Baseline's, averaged over the closed-loop scenarios (for trends). */
  summary: Record<string, number> | null;
}

export interface ScheduleRecord {
  id: string;
  object: 'schedule';
  cron: string;
  label: string | null;
  matrix: Matrix;
  createdAt: string;
  lastRunId: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE,
  label TEXT,
  status TEXT NOT NULL,
  matrix TEXT NOT NULL,
  matrix_key TEXT NOT NULL,
  provider TEXT NOT NULL DEFAULT 'local',
  schedule_id TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  error TEXT,
  progress TEXT,
  compared_with TEXT,
  regressions INTEGER,
  summary TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq);
CREATE INDEX IF NOT EXISTS runs_schedule ON runs (schedule_id, seq);
CREATE TABLE IF NOT EXISTS run_processes (
  run_id TEXT NOT NULL,
  pid INTEGER NOT NULL,
  start_ticks INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY,
  cron TEXT NOT NULL,
  label TEXT,
  matrix TEXT NOT NULL,
  created_at TEXT NOT NULL,
  last_run_id TEXT
);
`;

interface RunRow {
  id: string;
  seq: number;
  label: string | null;
  status: RunStatus;
  matrix: string;
  matrix_key: string;
  provider: Provider;
  schedule_id: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  progress: string | null;
  compared_with: string | null;
  regressions: number | null;
  summary: string | null;
}

interface ScheduleRow {
  id: string;
  cron: string;
  label: string | null;
  matrix: string;
  created_at: string;
  last_run_id: string | null;
}

const toRun = (r: RunRow): RunRecord => ({
  id: r.id,
  object: 'run',
  seq: r.seq,
  label: r.label,
  status: r.status,
  matrix: JSON.parse(r.matrix) as Matrix,
  matrixKey: r.matrix_key,
  provider: r.provider,
  scheduleId: r.schedule_id,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  error: r.error,
  progress: r.progress === null ? null : (JSON.parse(r.progress) as RunProgress),
  comparedWith: r.compared_with,
  regressions: r.regressions,
  summary: r.summary === null ? null : (JSON.parse(r.summary) as Record<string, number>),
});

const toSchedule = (r: ScheduleRow): ScheduleRecord => ({
  id: r.id,
  object: 'schedule',
  cron: r.cron,
  label: r.label,
  matrix: JSON.parse(r.matrix) as Matrix,
  createdAt: r.created_at,
  lastRunId: r.last_run_id,
});

const newId = (prefix: string): string => `${prefix}_${randomBytes(8).toString('hex')}`;

/** A key that is the same for the same matrix, whatever the order of its object keys. */
export function matrixKey(m: Matrix): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canon) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])])) : v;
  return createHash('sha256').update(JSON.stringify(canon(m))).digest('hex').slice(0, 16);
}

/** Writes a file so that a reader (or a crash) sees the old contents or the new, never half. */
export function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export class DaemonStore {
  private readonly db: Database.Database;

  constructor(readonly dataDir: string) {
    mkdirSync(join(dataDir, 'runs'), { recursive: true });
    this.db = new Database(join(dataDir, 'orchestrator.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  runDir(id: string): string {
    return join(this.dataDir, 'runs', id);
  }

  /**
   * After a restart: a run that was under way is interrupted (what it finished is in its
   * results file); queued runs stay queued. Returns the ids marked interrupted.
   */
  recover(now = new Date()): string[] {
    const cut = this.db.prepare(`SELECT id FROM runs WHERE status = 'running'`).all() as Array<{ id: string }>;
    const mark = this.db.prepare(`UPDATE runs SET status = 'interrupted', finished_at = ?, error = ? WHERE id = ?`);
    for (const { id } of cut) mark.run(now.toISOString(), 'the daemon stopped during the run; the cells it finished are kept', id);
    return cut.map((r) => r.id);
  }

  /** A process a run started (its process group is stopped should the daemon die first). */
  addProcess(runId: string, pid: number, startTicks: number): void {
    this.db.prepare('INSERT INTO run_processes (run_id, pid, start_ticks) VALUES (?, ?, ?)').run(runId, pid, startTicks);
  }

  /** The processes recorded for runs, and forgets them. */
  takeProcesses(runId?: string): Array<{ pid: number; startTicks: number }> {
    const rows = (
      runId === undefined ? this.db.prepare('SELECT pid, start_ticks FROM run_processes').all() : this.db.prepare('SELECT pid, start_ticks FROM run_processes WHERE run_id = ?').all(runId)
    ) as Array<{ pid: number; start_ticks: number }>;
    if (runId === undefined) this.db.prepare('DELETE FROM run_processes').run();
    else this.db.prepare('DELETE FROM run_processes WHERE run_id = ?').run(runId);
    return rows.map((r) => ({ pid: r.pid, startTicks: r.start_ticks }));
  }

  createRun(matrix: Matrix, label: string | null, scheduleId: string | null = null, provider: Provider = 'local'): RunRecord {
    const id = newId('run');
    const create = this.db.transaction(() => {
      const seq = ((this.db.prepare('SELECT MAX(seq) AS m FROM runs').get() as { m: number | null }).m ?? 0) + 1;
      this.db
        .prepare(`INSERT INTO runs (id, seq, label, status, matrix, matrix_key, provider, schedule_id, created_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)`)
        .run(id, seq, label, JSON.stringify(matrix), matrixKey(matrix), provider, scheduleId, new Date().toISOString());
    });
    create();
    mkdirSync(this.runDir(id), { recursive: true });
    return this.run(id)!;
  }

  run(id: string): RunRecord | null {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as RunRow | undefined;
    return r === undefined ? null : toRun(r);
  }

  /** Newest first; `after` is the id of the last run of the previous page. */
  listRuns(o: { limit: number; after?: string; status?: RunStatus; label?: string; matrixKey?: string }): { runs: RunRecord[]; hasMore: boolean } {
    const where: string[] = [];
    const args: unknown[] = [];
    if (o.after !== undefined) {
      const after = this.db.prepare('SELECT seq FROM runs WHERE id = ?').get(o.after) as { seq: number } | undefined;
      where.push('seq < ?');
      args.push(after?.seq ?? -1);
    }
    if (o.status !== undefined) {
      where.push('status = ?');
      args.push(o.status);
    }
    if (o.label !== undefined) {
      where.push('label = ?');
      args.push(o.label);
    }
    if (o.matrixKey !== undefined) {
      where.push('matrix_key = ?');
      args.push(o.matrixKey);
    }
    const rows = this.db
      .prepare(`SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`)
      .all(...args, o.limit + 1) as RunRow[];
    return { runs: rows.slice(0, o.limit).map(toRun), hasMore: rows.length > o.limit };
  }

  nextQueued(): RunRecord | null {
    const r = this.db.prepare(`SELECT * FROM runs WHERE status = 'queued' ORDER BY seq LIMIT 1`).get() as RunRow | undefined;
    return r === undefined ? null : toRun(r);
  }

  queuedCount(): number {
    return (this.db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE status = 'queued'`).get() as { n: number }).n;
  }

  /** queued -> running; false when the run is no longer queued (cancelled meanwhile). */
  markRunning(id: string): boolean {
    return this.db.prepare(`UPDATE runs SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'`).run(new Date().toISOString(), id).changes === 1;
  }

  setProgress(id: string, p: RunProgress): void {
    this.db.prepare('UPDATE runs SET progress = ? WHERE id = ?').run(JSON.stringify(p), id);
  }

  finish(id: string, status: RunStatus, error: string | null): void {
    this.db.prepare('UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?').run(status, new Date().toISOString(), error, id);
  }

  /** A queued run cancelled before it started; false when it was not queued. */
  cancelQueued(id: string): boolean {
    return this.db.prepare(`UPDATE runs SET status = 'canceled', finished_at = ? WHERE id = ? AND status = 'queued'`).run(new Date().toISOString(), id).changes === 1;
  }

  setSummary(id: string, summary: Record<string, number>): void {
    this.db.prepare('UPDATE runs SET summary = ? WHERE id = ?').run(JSON.stringify(summary), id);
  }

  setComparison(id: string, base: string, regressions: number): void {
    this.db.prepare('UPDATE runs SET compared_with = ?, regressions = ? WHERE id = ?').run(base, regressions, id);
  }

  /** The last completed run of a schedule before `seq`. */
  previousOfSchedule(scheduleId: string, seq: number): RunRecord | null {
    const r = this.db.prepare(`SELECT * FROM runs WHERE schedule_id = ? AND seq < ? AND status = 'completed' ORDER BY seq DESC LIMIT 1`).get(scheduleId, seq) as RunRow | undefined;
    return r === undefined ? null : toRun(r);
  }

  /** Regressions flagged over the whole history (the /metrics counter survives restarts). */
  regressionsTotal(): number {
    return (this.db.prepare('SELECT COALESCE(SUM(regressions), 0) AS n FROM runs').get() as { n: number }).n;
  }

  countByStatus(): Record<RunStatus, number> {
    const out = Object.fromEntries(RUN_STATUSES.map((s) => [s, 0])) as Record<RunStatus, number>;
    for (const r of this.db.prepare('SELECT status, COUNT(*) AS n FROM runs GROUP BY status').all() as Array<{ status: RunStatus; n: number }>) out[r.status] = r.n;
    return out;
  }

  // ---- results files ----

  writeResults(id: string, r: Results): void {
    writeAtomic(join(this.runDir(id), 'results.json'), JSON.stringify(r) + '\n');
  }

  readResults(id: string): Results | null {
    const path = join(this.runDir(id), 'results.json');
    if (!existsSync(path)) return null;
    return JSON.parse(readFileSync(path, 'utf8')) as Results;
  }

  writeFile(id: string, name: string, data: string): void {
    writeAtomic(join(this.runDir(id), name), data);
  }

  readFile(id: string, name: string): string | null {
    const path = join(this.runDir(id), name);
    return existsSync(path) ? readFileSync(path, 'utf8') : null;
  }

  // ---- schedules ----

  createSchedule(cron: string, matrix: Matrix, label: string | null): ScheduleRecord {
    const id = newId('sched');
    this.db.prepare('INSERT INTO schedules (id, cron, label, matrix, created_at) VALUES (?, ?, ?, ?, ?)').run(id, cron, label, JSON.stringify(matrix), new Date().toISOString());
    return this.schedule(id)!;
  }

  schedule(id: string): ScheduleRecord | null {
    const r = this.db.prepare('SELECT * FROM schedules WHERE id = ?').get(id) as ScheduleRow | undefined;
    return r === undefined ? null : toSchedule(r);
  }

  listSchedules(): ScheduleRecord[] {
    return (this.db.prepare('SELECT * FROM schedules ORDER BY created_at, id').all() as ScheduleRow[]).map(toSchedule);
  }

  deleteSchedule(id: string): boolean {
    return this.db.prepare('DELETE FROM schedules WHERE id = ?').run(id).changes === 1;
  }

  setScheduleRun(id: string, runId: string): void {
    this.db.prepare('UPDATE schedules SET last_run_id = ? WHERE id = ?').run(runId, id);
  }
}
