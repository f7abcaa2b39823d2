// The gateway's error vocabulary: stable codes, each with its HTTP status and
// OpenAI error type. Every failure a client sees is one of these.
import type { OpenAIErrorType } from '../common/openai-error.js';

export interface ErrorKind {
  status: number;
  type: OpenAIErrorType;
  code: string;
}

export const E = {
  invalidJson: { status: 400, type: 'invalid_request_error', code: 'invalid_json' },
  invalidBody: { status: 400, type: 'invalid_request_error', code: 'invalid_request_body' },
  invalidPath: { status: 400, type: 'invalid_request_error', code: 'invalid_path' },
  modelRequired: { status: 400, type: 'invalid_request_error', code: 'missing_model' },
  missingKey: { status: 401, type: 'authentication_error', code: 'missing_api_key' },
  invalidKey: { status: 401, type: 'authentication_error', code: 'invalid_api_key' },
  modelNotAllowed: { status: 403, type: 'permission_error', code: 'model_not_allowed' },
  unknownModel: { status: 404, type: 'not_found_error', code: 'model_not_found' },
  unknownRoute: { status: 404, type: 'not_found_error', code: 'unknown_url' },
  bodyTooLarge: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  rateLimited: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  internal: { status: 500, type: 'server_error', code: 'internal_error' },
  upstreamFailed: { status: 502, type: 'server_error', code: 'upstream_error' },
  storeUnavailable: { status: 503, type: 'server_error', code: 'key_store_unavailable' },
  draining: { status: 503, type: 'server_error', code: 'shutting_down' },
  upstreamTimeout: { status: 504, type: 'server_error', code: 'upstream_timeout' },
} as const satisfies Record<string, ErrorKind>;
