// nginx (Debian's package): the floor a C proxy reaches. A keep-alive
// reverse proxy that checks the bearer key with a `map`, with its access log
// on and buffered, one worker per core: what a gateway must at least do.
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { SystemModule } from './types.js';

export const NGINX = '/usr/sbin/nginx';

function config(dir: string, host: string, port: number, sinkHost: string, sinkPort: number, key: string, workers: number): string {
  return `worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 8192; }
http {
  log_format bench '$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time';
  access_log ${dir}/access.log bench buffer=64k flush=1s;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 64m;
  keepalive_requests 1000000;
  map_hash_bucket_size 256;
  map $http_authorization $key_ok {
    default 0;
    "Bearer ${key}" 1;
  }
  upstream sink {
    server ${sinkHost}:${sinkPort};
    keepalive 512;
  }
  server {
    listen ${host}:${port} reuseport;
    location / {
      # The type of our own 401 (proxied answers keep the sink's).
      default_type application/json;
      if ($key_ok = 0) {
        return 401 '{"error":{"message":"Incorrect API key provided.","type":"authentication_error","param":null,"code":"invalid_api_key"}}';
      }
      proxy_pass http://sink;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 3600s;
    }
  }
}
`;
}

export const nginx: SystemModule = {
  name: 'nginx',
  unavailable: async (ctx) =>
    (await ctx.files.exists(NGINX)) ? null : `nginx is not installed (${NGINX}); install it with: apt-get install -y --no-install-recommends nginx-light (or run sluice bench --install-peers as root)`,
  start: async (ctx) => {
    const port = await ctx.freePort();
    const key = `sk-nginx-${randomBytes(16).toString('hex')}`;
    const dir = join(ctx.dir, 'nginx');
    await ctx.files.mkdir(dir);
    const conf = join(dir, 'nginx.conf');
    await ctx.files.write(conf, config(dir, ctx.host, port, ctx.sink.host, ctx.sink.port, key, ctx.cores));
    const { stderr } = await ctx.procs.exec(NGINX, ['-v']);
    const version = stderr.trim().replace(/^nginx version:\s*/, '');
    // -t first: a config error is one line, not a wait for a port that never opens.
    try {
      // On the system's host: -t binds the listen address.
      await ctx.procs.exec(NGINX, ['-t', '-q', '-e', join(dir, 'error.log'), '-c', conf]);
    } catch (err) {
      throw new Error(`nginx refused its config: ${String((err as { stderr?: string }).stderr ?? err).trim().split('\n')[0]}`);
    }
    const proc = await ctx.procs.start('nginx', NGINX, ['-e', join(dir, 'error.log'), '-c', conf]);
    // nginx says nothing when it listens: wait until the port answers.
    const deadline = Date.now() + 10_000;
    while ((await ctx.probe(`http://${ctx.host}:${port}/`)) === null) {
      if (Date.now() > deadline || proc.proc.exitCode !== null) {
        await ctx.procs.stop(proc);
        throw new Error(`nginx did not answer on port ${port}: ${proc.output().split('\n').slice(-2).join(' | ')}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return { url: `http://${ctx.host}:${port}/v1`, key, headers: {}, pids: [proc.pid], version, stop: () => ctx.procs.stop(proc) };
  },
};
