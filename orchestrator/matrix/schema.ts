// The matrix file's JSON Schema (ajv, compiled once) and the checks a schema
// cannot express. Every error is one line naming the field:
// `matrix: scenarios.1.wait_ms: must be >= 0`.
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { describeError } from '../../common/schema-errors.js';
import { MAX_TIMER_MS } from '../../common/timer-limit.js';
import { chatBodyOverhead } from '../../loadgen/body.js';
import { LIMITS } from '../../loadgen/spec.js';
import { BUILTIN_SYSTEMS, type Matrix } from './types.js';

const NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';

export const matrixSchema = {
  $id: 'sluice-matrix',
  type: 'object',
  additionalProperties: false,
  required: ['scenarios'],
  properties: {
    scenarios: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'workers'],
        properties: {
          name: { type: 'string', pattern: NAME },
          workers: { type: 'integer', minimum: 1, maximum: 100_000 },
          requests: { type: 'integer', minimum: 1, maximum: LIMITS.requests },
          duration_s: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.spanS },
          request_bytes: { type: 'integer', minimum: 1, maximum: 64 * 1024 * 1024, default: 1024 },
          wait_ms: { type: 'number', minimum: 0, maximum: MAX_TIMER_MS, default: 0 },
          stream: {
            type: 'object',
            additionalProperties: false,
            required: ['output_tokens'],
            properties: {
              ttft_ms: { type: 'number', minimum: 0, maximum: MAX_TIMER_MS, default: 0 },
              itl_ms: { type: 'number', minimum: 0, maximum: MAX_TIMER_MS, default: 0 },
              output_tokens: { type: 'integer', minimum: 1, maximum: 1_000_000 },
            },
          },
          rate: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.rate },
          arrival: { enum: ['constant', 'poisson'], default: 'constant' },
          warmup_s: { type: 'number', minimum: 0, maximum: 3600 },
          sweep: {
            type: 'object',
            additionalProperties: false,
            required: ['rates'],
            properties: {
              rates: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'number', exclusiveMinimum: 0, maximum: LIMITS.rate } },
              step_s: { type: 'number', exclusiveMinimum: 0, maximum: 3600, default: 5 },
              bound_ms: { type: 'number', exclusiveMinimum: 0, maximum: 3_600_000, default: 100 },
            },
          },
        },
      },
    },
    systems: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', pattern: NAME },
      default: ['baseline', 'sluice', 'sluice-redis', 'nginx', 'portkey'],
    },
    custom: {
      type: 'object',
      propertyNames: { pattern: NAME },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['url'],
        properties: {
          command: { type: 'string', minLength: 1 },
          url: { type: 'string', pattern: '^https?://\\S+$' },
          ready_url: { type: 'string', pattern: '^https?://\\S+$' },
          key: { type: 'string' },
          key_header: { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" },
          headers: { type: 'object', additionalProperties: { type: 'string' } },
          sample: { anyOf: [{ const: 'command' }, { type: 'integer', minimum: 1 }] },
          version: { type: 'string' },
          model: { type: 'string', minLength: 1 },
        },
      },
      default: {},
    },
    repetitions: { type: 'integer', minimum: 1, maximum: 100, default: 1 },
    warmup_s: { type: 'number', minimum: 0, maximum: 3600, default: 2 },
    model: { type: 'string', minLength: 1, default: 'benchmark-model' },
    // Where --provider gcp creates its VMs (flags override each field).
    gcp: {
      type: 'object',
      additionalProperties: false,
      properties: {
        project: { type: 'string', pattern: '^[a-z][a-z0-9-]{4,28}[a-z0-9]$' },
        zone: { type: 'string', pattern: '^[a-z]+-[a-z]+[0-9]+-[a-z]$' },
        machine_type: { type: 'string', pattern: '^[a-z0-9-]+$' },
        image: { type: 'string', minLength: 1 },
        network: { type: 'string', minLength: 1 },
      },
    },
  },
} as const;

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: false });
const validate = ajv.compile(matrixSchema);

export class MatrixError extends Error {
  override name = 'MatrixError';
}

/** Validates a parsed matrix (filling defaults); throws MatrixError naming the field. */
export function validateMatrix(raw: unknown): Matrix {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new MatrixError('matrix: must be a YAML mapping (or a JSON object)');
  const m = structuredClone(raw) as Record<string, unknown>;
  if (!validate(m)) throw new MatrixError(`matrix: ${describeError(validate.errors![0]!)}`);
  const matrix = m as unknown as Matrix;
  const names = new Set<string>();
  matrix.scenarios.forEach((s, i) => {
    const at = `matrix: scenarios.${i}`;
    if (names.has(s.name)) throw new MatrixError(`${at}.name: "${s.name}" is used by an earlier scenario`);
    names.add(s.name);
    if (s.requests !== undefined && s.duration_s !== undefined) throw new MatrixError(`${at}.requests: excludes duration_s`);
    if (s.sweep !== undefined) {
      if (s.rate !== undefined) throw new MatrixError(`${at}.rate: a sweep sets the rates (sweep.rates)`);
      if (s.requests !== undefined || s.duration_s !== undefined) throw new MatrixError(`${at}.sweep: sets its own length (sweep.step_s); remove requests and duration_s`);
      s.sweep.rates.forEach((r, j) => {
        if (j > 0 && r <= s.sweep!.rates[j - 1]!) throw new MatrixError(`${at}.sweep.rates.${j}: must be larger than the rate before it`);
      });
    }
    const min = chatBodyOverhead(matrix.model, s.stream !== undefined);
    if (s.request_bytes < min) throw new MatrixError(`${at}.request_bytes: must be at least ${min} for this model and mode`);
  });
  const seen = new Set<string>();
  matrix.systems.forEach((name, i) => {
    if (seen.has(name)) throw new MatrixError(`matrix: systems.${i}: "${name}" is listed twice`);
    seen.add(name);
    if (!(BUILTIN_SYSTEMS as readonly string[]).includes(name) && matrix.custom[name] === undefined) {
      throw new MatrixError(`matrix: systems.${i}: unknown system "${name}"; the systems are ${BUILTIN_SYSTEMS.join(', ')} or one described under custom`);
    }
  });
  for (const name of Object.keys(matrix.custom)) {
    if ((BUILTIN_SYSTEMS as readonly string[]).includes(name)) throw new MatrixError(`matrix: custom.${name}: is the name of a built-in system`);
  }
  // Baseline is every table's reference: it runs first, whether listed or not.
  matrix.systems = ['baseline', ...matrix.systems.filter((s) => s !== 'baseline')];
  return matrix;
}

/** Parses a matrix file's text (YAML, which includes JSON). */
export function parseMatrix(text: string): Matrix {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    const first = String(err instanceof Error ? err.message : err).split('\n')[0];
    throw new MatrixError(`matrix: not valid YAML or JSON: ${first}`);
  }
  return validateMatrix(raw);
}
