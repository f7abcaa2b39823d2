// For the bench's reference proxies: `workers` processes serving one uWS app on
// one port (SO_REUSEPORT), as the gateway does: the primary picks a free port
// (a port the kernel chose for a bind to port 0 cannot be shared), the workers
// all bind it, and the primary prints {"port":N} once every one of them is
// listening. SIGTERM stops them all.
import cluster from 'node:cluster';
import { uws } from '../../dist/common/uws.js';
import { claimPort } from '../../dist/gateway/primary.js';

/** Runs `makeApp()` (which returns a uWS app with its routes) in `workers` processes. */
export function clusterListen(workers, makeApp) {
  if (cluster.isPrimary && workers > 1) {
    claimPort('127.0.0.1', 0).then((port) => {
      let listening = 0;
      for (let i = 0; i < workers; i++) {
        cluster.fork({ BENCH_PORT: String(port) }).once('message', () => {
          if (++listening === workers) process.stdout.write(JSON.stringify({ port }) + '\n');
        });
      }
    });
    process.on('SIGTERM', () => {
      for (const w of Object.values(cluster.workers)) w.kill();
      process.exit(0);
    });
    return;
  }
  makeApp().listen('127.0.0.1', Number(process.env.BENCH_PORT ?? 0), (s) => {
    if (!s) {
      console.error(`cannot listen on port ${process.env.BENCH_PORT}`);
      process.exit(1);
    }
    const port = uws().us_socket_local_port(s);
    if (process.send) process.send({ port });
    else process.stdout.write(JSON.stringify({ port }) + '\n');
  });
  process.on('SIGTERM', () => process.exit(0));
}
