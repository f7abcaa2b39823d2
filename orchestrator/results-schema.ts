// The JSON Schema of results.json (ajv, compiled once): what the tests check
// a run wrote, and what --compare and the daemon accept as a results file.
import { Ajv } from 'ajv';
import { describeError } from '../common/schema-errors.js';
import { matrixSchema } from './matrix/schema.js';
import type { Results } from './results.js';

const latency = {
  type: 'object',
  required: ['avg', 'p50', 'p90', 'p99', 'p999', 'max'],
  properties: Object.fromEntries(['avg', 'p50', 'p90', 'p99', 'p999', 'max'].map((k) => [k, { type: 'number', minimum: 0 }])),
};

const loadgenResult = {
  type: 'object',
  required: ['requests', 'ok', 'errors', 'errorsByKind', 'durationS', 'rps', 'latencyMs', 'histogram'],
  properties: {
    requests: { type: 'integer', minimum: 0 },
    ok: { type: 'integer', minimum: 0 },
    errors: { type: 'integer', minimum: 0 },
    errorsByKind: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } },
    errorsByStatus: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } },
    durationS: { type: 'number', minimum: 0 },
    rps: { type: 'number', minimum: 0 },
    latencyMs: latency,
    ttftMs: latency,
    itlMs: latency,
    histogram: { type: 'string', minLength: 1 },
    ttftHistogram: { type: 'string' },
    itlHistogram: { type: 'string' },
  },
};

const measured = {
  cpuUsPerReq: { type: ['number', 'null'], minimum: 0 },
  peakRssMb: { type: ['number', 'null'], minimum: 0 },
};

export const resultsSchema = {
  $id: 'sluice-bench-results',
  type: 'object',
  required: ['object', 'version', 'startedAt', 'finishedAt', 'status', 'matrix', 'environment', 'systems', 'cells', 'sweeps'],
  properties: {
    object: { const: 'sluice.bench.results' },
    version: { const: 1 },
    startedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string' },
    status: { enum: ['completed', 'canceled', 'failed', 'interrupted'] },
    error: { type: 'string' },
    matrix: matrixSchema,
    environment: {
      type: 'object',
      required: ['cpuModel', 'cores', 'memoryGiB', 'kernel', 'node', 'sluice', 'provider'],
      properties: { cores: { type: 'integer', minimum: 1 } },
    },
    systems: { type: 'object', additionalProperties: { type: 'object', properties: { version: { type: 'string' }, skipped: { type: 'string' } }, additionalProperties: false } },
    cells: {
      type: 'array',
      items: {
        type: 'object',
        required: ['scenario', 'system', 'repetition'],
        properties: { scenario: { type: 'string' }, system: { type: 'string' }, repetition: { type: 'integer', minimum: 0 }, result: loadgenResult, skipped: { type: 'string' }, ...measured },
        additionalProperties: false,
        // A cell either ran (its result) or says why not.
        oneOf: [{ required: ['result'] }, { required: ['skipped'] }],
      },
    },
    sweeps: {
      type: 'array',
      items: {
        type: 'object',
        required: ['scenario', 'system', 'steps'],
        additionalProperties: false,
        properties: {
          scenario: { type: 'string' },
          system: { type: 'string' },
          stopped: { type: 'string' },
          skipped: { type: 'string' },
          steps: {
            type: 'array',
            items: {
              type: 'object',
              required: ['rate', 'result', 'addedP99Ms'],
              additionalProperties: false,
              properties: { rate: { type: 'number', exclusiveMinimum: 0 }, result: loadgenResult, addedP99Ms: { type: ['number', 'null'] }, ...measured },
            },
          },
        },
      },
    },
  },
} as const;

// The matrix inside was validated with its defaults filled: check it as is.
const validate = new Ajv({ allErrors: false, strict: false, validateFormats: false }).compile(resultsSchema);

/** Throws an Error naming the first field that does not fit the schema. */
export function checkResults(v: unknown): asserts v is Results {
  if (!validate(v)) throw new Error(`results: ${describeError(validate.errors![0]!)}`);
}
