// Application Default Credentials, looked for before anything is created, and
// the guard that keeps google-auth-library off the GCE metadata server: with
// no credentials it would try 169.254.169.254, traffic that must never leave a
// machine that is not on GCE.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export class GcpUnavailable extends Error {
  override name = 'GcpUnavailable';
}

/** The credentials file google-auth-library would use, or null. */
export function findCredentials(env: NodeJS.ProcessEnv = process.env, home = homedir()): string | null {
  const explicit = env.GOOGLE_APPLICATION_CREDENTIALS;
  if (explicit) return existsSync(explicit) ? explicit : null;
  const config = env.CLOUDSDK_CONFIG ?? join(home, '.config', 'gcloud');
  const adc = join(config, 'application_default_credentials.json');
  return existsSync(adc) ? adc : null;
}

/**
 * Checks for credentials (a GcpUnavailable saying how to log in when there are none) and,
 * unless sluice itself runs on GCE, tells google-auth-library not to probe the metadata server.
 */
export function prepareCredentials(o: { onGce: boolean }, env: NodeJS.ProcessEnv = process.env): string {
  if (!o.onGce) env.METADATA_SERVER_DETECTION = 'none';
  const file = findCredentials(env);
  if (file === null) {
    if (env.GOOGLE_APPLICATION_CREDENTIALS) {
      throw new GcpUnavailable(`--provider gcp: GOOGLE_APPLICATION_CREDENTIALS names ${env.GOOGLE_APPLICATION_CREDENTIALS}, which does not exist`);
    }
    if (o.onGce) return 'the GCE metadata server';
    throw new GcpUnavailable('--provider gcp: no Google Cloud credentials found; log in with: gcloud auth application-default login (or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file)');
  }
  return file;
}
