// One line naming the field for the first error of an ajv validation, in the
// form the CLI prints: `scenarios.1.wait_ms: must be >= 0`.
import type { ErrorObject } from 'ajv';

/** The dotted path of an error's field ('' at the top level). */
export function fieldPath(err: ErrorObject): string {
  const base = err.instancePath.slice(1).replace(/\//g, '.');
  const join = (name: string) => (base === '' ? name : `${base}.${name}`);
  if (err.keyword === 'additionalProperties') return join((err.params as { additionalProperty: string }).additionalProperty);
  if (err.keyword === 'required') return join((err.params as { missingProperty: string }).missingProperty);
  return base;
}

/** `field: what is wrong`, for the errors that ajv's own message leaves vague. */
export function describeError(err: ErrorObject): string {
  const path = fieldPath(err) || '(top level)';
  switch (err.keyword) {
    case 'additionalProperties':
      return `${path}: unknown field`;
    case 'required':
      return `${path}: is required`;
    case 'enum':
      return `${path}: must be one of ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
    default:
      return `${path}: ${err.message ?? 'is invalid'}`;
  }
}
