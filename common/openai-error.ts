// OpenAI's error shape, shared by every HTTP edge we own (sink, gateway, loadgen API).

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'api_error';

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType | string; param: string | null; code: string | null };
}

export function errorBody(
  message: string,
  type: OpenAIErrorType | string,
  code: string | null = null,
  param: string | null = null,
): string {
  const body: OpenAIErrorBody = { error: { message, type, param, code } };
  return JSON.stringify(body);
}

/** The error type OpenAI uses for a status, when a caller has nothing more specific. */
export function typeForStatus(status: number): OpenAIErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}
