/**
 * The prompt-token estimate the sink reports and the load generator assumes:
 * one token per 4 bytes of request body, rounded up (OpenAI's rule of thumb
 * for English text), and at least 1. It is deliberately a function of the
 * body's size alone so that usage totals are predictable in tests.
 */
export function estimatePromptTokens(bodyBytes: number): number {
  return Math.max(1, Math.ceil(bodyBytes / 4));
}
