/** Runs `stop` once on the first SIGTERM or SIGINT; a second signal exits at once with 130. */
export function onStopSignal(stop: () => Promise<void> | void): void {
  let stopping = false;
  const handler = (): void => {
    if (stopping) process.exit(130);
    stopping = true;
    void Promise.resolve(stop()).catch((err: unknown) => {
      process.stderr.write(`stop failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
