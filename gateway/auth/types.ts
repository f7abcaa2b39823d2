/** What the gateway knows about a key once its secret has been matched. Never the secret. */
export interface KeyRecord {
  id: string;
  name: string;
  /** Allowed model names; '*' allows all. */
  models: readonly string[];
  /** Requests per minute; undefined = unlimited. */
  rpm?: number;
  /** Tokens per minute; undefined = unlimited. */
  tpm?: number;
  /** Epoch ms; undefined = never. */
  expiresAt?: number;
  revokedAt?: number;
}

/** A source of keys by the SHA-256 (hex) of their secret: config, SQLite or Redis. */
export interface KeySource {
  /** Resolves null for an unknown key; rejects when the source is unreachable. */
  lookup(sha256Hex: string): Promise<KeyRecord | null>;
}

export function allowsModel(key: KeyRecord, model: string): boolean {
  const m = key.models;
  for (let i = 0; i < m.length; i++) if (m[i] === '*' || m[i] === model) return true;
  return false;
}
