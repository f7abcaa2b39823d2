// A fake Compute Engine REST API on loopback, enough for the gcp provider:
// instances insert/get/delete/aggregatedList and zone operations wait. The
// real @google-cloud/compute client talks to it (REST fallback, no auth), so
// nothing reaches GCP. It records every request for the tests to check.
import { createServer, type Server } from 'node:http';
import type { Test } from 'tap';
import type { ClientOptions } from 'google-gax';

export interface FakeRequest {
  method: string;
  path: string;
  body: Record<string, unknown> | null;
}

interface Op {
  name: string;
  status: 'RUNNING' | 'DONE';
  target: string;
  kind: 'insert' | 'delete';
  zone: string;
  error?: { code: string; message: string };
  waits: number;
}

export interface FakeCompute {
  port: number;
  requests: FakeRequest[];
  /** Instances that exist now, by name. */
  instances: Map<string, { zone: string; resource: Record<string, unknown> }>;
  operations: Map<string, Op>;
  /** Answer the insert of this VM with an HTTP error (status, Google error body). */
  failInsert: Map<string, { status: number; reason: string; message: string }>;
  /** Let the insert operation of this VM end with this error. */
  failOperation: Map<string, { code: string; message: string }>;
  /** The addresses a VM reports (default 10.128.0.N inside, 203.0.113.N outside). */
  addresses: { of: ((name: string) => { networkIP: string; natIP: string }) | null };
  /** Called with every accepted insert's instance resource (a test's guest agent: it installs the metadata's SSH key). */
  onInsert: { fn: ((resource: Record<string, unknown>) => void) | null };
  /** SDK options that send every call here. */
  clientOptions: () => Promise<ClientOptions>;
}

export async function startFakeCompute(t: Test): Promise<FakeCompute> {
  const fake = {
    requests: [] as FakeRequest[],
    instances: new Map<string, { zone: string; resource: Record<string, unknown> }>(),
    operations: new Map<string, Op>(),
    failInsert: new Map<string, { status: number; reason: string; message: string }>(),
    failOperation: new Map<string, { code: string; message: string }>(),
    addresses: { of: null as ((name: string) => { networkIP: string; natIP: string }) | null },
    onInsert: { fn: null as ((resource: Record<string, unknown>) => void) | null },
  };
  let seq = 0;
  const opJson = (op: Op) => ({
    kind: 'compute#operation',
    name: op.name,
    status: op.status,
    operationType: op.kind,
    zone: `https://www.googleapis.com/compute/v1/projects/p/zones/${op.zone}`,
    targetLink: `https://www.googleapis.com/compute/v1/projects/p/zones/${op.zone}/instances/${op.target}`,
    ...(op.status === 'DONE' && op.error ? { error: { errors: [op.error] } } : {}),
  });
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      // The SDK appends "?" (and query parameters): match the path alone.
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      let body: Record<string, unknown> | null = null;
      try {
        body = raw ? (JSON.parse(raw) as Record<string, unknown>) : null;
      } catch {
        body = null;
      }
      fake.requests.push({ method: req.method ?? '', path, body });
      const send = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      let m: RegExpExecArray | null;
      if (req.method === 'POST' && (m = /^\/compute\/v1\/projects\/[^/]+\/zones\/([^/]+)\/instances$/.exec(path))) {
        const name = String(body?.name);
        const fail = fake.failInsert.get(name);
        if (fail) return send(fail.status, { error: { code: fail.status, message: fail.message, errors: [{ reason: fail.reason, message: fail.message, domain: 'usageLimits' }] } });
        const op: Op = { name: `op-${++seq}`, status: 'RUNNING', target: name, kind: 'insert', zone: m[1]!, waits: 0 };
        const opErr = fake.failOperation.get(name);
        if (opErr) op.error = opErr;
        else {
          fake.instances.set(name, { zone: m[1]!, resource: body! });
          fake.onInsert.fn?.(body!);
        }
        fake.operations.set(op.name, op);
        return send(200, opJson(op));
      }
      if (req.method === 'POST' && (m = /^\/compute\/v1\/projects\/[^/]+\/zones\/[^/]+\/operations\/([^/]+)\/wait$/.exec(path))) {
        const op = fake.operations.get(m[1]!);
        if (!op) return send(404, { error: { code: 404, message: `The resource 'operations/${m[1]}' was not found` } });
        op.waits++;
        op.status = 'DONE';
        if (op.kind === 'delete') fake.instances.delete(op.target);
        return send(200, opJson(op));
      }
      if ((m = /^\/compute\/v1\/projects\/[^/]+\/zones\/([^/]+)\/instances\/([^/]+)$/.exec(path))) {
        const name = decodeURIComponent(m[2]!);
        const inst = fake.instances.get(name);
        if (!inst) return send(404, { error: { code: 404, message: `The resource 'instances/${name}' was not found`, errors: [{ reason: 'notFound', message: 'not found' }] } });
        if (req.method === 'GET') {
          const n = [...fake.instances.keys()].indexOf(name) + 10;
          const a = fake.addresses.of?.(name) ?? { networkIP: `10.128.0.${n}`, natIP: `203.0.113.${n}` };
          return send(200, {
            ...inst.resource,
            status: 'RUNNING',
            networkInterfaces: [{ networkIP: a.networkIP, accessConfigs: [{ natIP: a.natIP }] }],
          });
        }
        if (req.method === 'DELETE') {
          const op: Op = { name: `op-${++seq}`, status: 'RUNNING', target: name, kind: 'delete', zone: m[1]!, waits: 0 };
          fake.operations.set(op.name, op);
          return send(200, opJson(op));
        }
      }
      if (req.method === 'GET' && /^\/compute\/v1\/projects\/[^/]+\/aggregated\/instances$/.test(path)) {
        const items: Record<string, { instances: unknown[] }> = {};
        for (const [name, inst] of fake.instances) (items[`zones/${inst.zone}`] ??= { instances: [] }).instances.push({ ...inst.resource, name });
        return send(200, { kind: 'compute#instanceAggregatedList', items });
      }
      send(404, { error: { code: 404, message: `fake compute: no route for ${req.method} ${path}` } });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  return {
    ...fake,
    port,
    clientOptions: async () => {
      const { PassThroughClient } = await import('google-auth-library');
      // The port on its own: "127.0.0.1:PORT" as apiEndpoint silently goes to 443.
      return { fallback: true, apiEndpoint: '127.0.0.1', port, protocol: 'http', authClient: new PassThroughClient() } as ClientOptions;
    },
  };
}
