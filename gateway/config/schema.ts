// The gateway config file's JSON Schema (ajv, compiled once at start).
import { MAX_TIMER_MS } from '../../common/timer-limit.js';
export const configSchema = {
  $id: 'sluice-gateway-config',
  type: 'object',
  additionalProperties: false,
  properties: {
    listen: {
      type: 'object',
      additionalProperties: false,
      properties: {
        host: { type: 'string', minLength: 1, default: '127.0.0.1' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
      },
      default: {},
    },
    workers: { anyOf: [{ const: 'auto' }, { type: 'integer', minimum: 1, maximum: 256 }], default: 'auto' },
    models: {
      type: 'object',
      propertyNames: { minLength: 1 },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['upstreams'],
        properties: {
          balance: { enum: ['round_robin', 'least_in_flight'], default: 'round_robin' },
          upstreams: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['url'],
              properties: {
                url: { type: 'string', pattern: '^https?://[^\\s]+$' },
                api_key_env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
                weight: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
                model: { type: 'string', minLength: 1 },
                connections: { type: 'integer', minimum: 1, maximum: 10000 },
                tls: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    ca_file: { type: 'string', minLength: 1 },
                    reject_unauthorized: { type: 'boolean', default: true },
                  },
                },
              },
            },
          },
        },
      },
      default: {},
    },
    keys: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'sha256'],
        properties: {
          name: { type: 'string', minLength: 1 },
          sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
          models: { type: 'array', items: { type: 'string', minLength: 1 }, default: ['*'] },
        },
      },
      default: [],
    },
    store: {
      type: 'object',
      required: ['kind'],
      oneOf: [
        {
          additionalProperties: false,
          properties: { kind: { const: 'sqlite' }, path: { type: 'string', minLength: 1 } },
        },
        {
          additionalProperties: false,
          required: ['url'],
          properties: { kind: { const: 'redis' }, url: { type: 'string', pattern: '^rediss?://' } },
        },
        { additionalProperties: false, properties: { kind: { const: 'none' } } },
      ],
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      properties: { token_env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
    },
    metrics: {
      type: 'object',
      additionalProperties: false,
      properties: { token_env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } },
    },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: { max_body_bytes: { type: 'integer', minimum: 1024, default: 33554432 } },
      default: {},
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      properties: {
        connect_ms: { type: 'integer', minimum: 1, maximum: MAX_TIMER_MS, default: 5000 },
        headers_ms: { type: 'integer', minimum: 1, maximum: MAX_TIMER_MS, default: 300000 },
        body_ms: { type: 'integer', minimum: 0, maximum: MAX_TIMER_MS, default: 300000 },
        idle_ms: { type: 'integer', minimum: 1, maximum: MAX_TIMER_MS, default: 4000 },
      },
      default: {},
    },
    health: {
      type: 'object',
      additionalProperties: false,
      properties: {
        failures: { type: 'integer', minimum: 1, default: 3 },
        cooldown_ms: { type: 'integer', minimum: 1, maximum: MAX_TIMER_MS, default: 10000 },
      },
      default: {},
    },
    shutdown: {
      type: 'object',
      additionalProperties: false,
      // The primary's backstop fires 5 s after grace + drain; a Node timer takes at most MAX_TIMER_MS.
      properties: {
        drain_timeout_ms: { type: 'integer', minimum: 0, maximum: MAX_TIMER_MS - 5000, default: 30000 },
        grace_ms: { type: 'integer', minimum: 0, maximum: MAX_TIMER_MS - 5000, default: 5000 },
        while_draining: { enum: ['serve', 'refuse'], default: 'serve' },
      },
      default: {},
    },
    log: {
      type: 'object',
      additionalProperties: false,
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
        requests: { type: 'boolean', default: true },
      },
      default: {},
    },
  },
} as const;

export interface UpstreamConfig {
  url: string;
  api_key_env?: string;
  weight: number;
  model?: string;
  connections?: number;
  /** For https upstreams; `ca` is the PEM text of `ca_file`, read when the config is loaded. */
  tls?: { ca_file?: string; reject_unauthorized: boolean; ca?: string };
}

export interface ModelConfig {
  balance: 'round_robin' | 'least_in_flight';
  upstreams: UpstreamConfig[];
}

export interface StaticKeyConfig {
  name: string;
  sha256: string;
  models: string[];
}

export type StoreConfig = { kind: 'sqlite'; path?: string } | { kind: 'redis'; url: string } | { kind: 'none' };

export interface GatewayConfig {
  listen: { host: string; port: number };
  workers: 'auto' | number;
  models: Record<string, ModelConfig>;
  keys: StaticKeyConfig[];
  store?: StoreConfig;
  admin?: { token_env?: string };
  /** With token_env, /metrics wants `Authorization: Bearer <that variable's value>`. */
  metrics?: { token_env?: string };
  limits: { max_body_bytes: number };
  timeouts: { connect_ms: number; headers_ms: number; body_ms: number; idle_ms: number };
  health: { failures: number; cooldown_ms: number };
  /**
   * SIGTERM: for `grace_ms` the worker keeps its listener and /readyz answers 503 (a load balancer
   * takes it out), then it stops accepting and waits up to `drain_timeout_ms` for what is in flight.
   * Meanwhile every response carries `Connection: close`, and new requests are served or refused (503).
   */
  shutdown: { drain_timeout_ms: number; grace_ms: number; while_draining: 'serve' | 'refuse' };
  log: { level: string; requests: boolean };
}
