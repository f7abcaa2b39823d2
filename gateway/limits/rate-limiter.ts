// Per-key rate limits (requests/min, tokens/min) that hold across every
// worker and instance sharing a store, without a store round trip per
// request: each worker leases a batch of units from the store's window and
// spends it locally. Batches are 1% of the limit (at least 1), so a worker
// holds back at most that much from the others and small limits are exact.
// A worker has at most one lease in flight per key and kind: requests that
// find the balance empty meanwhile wait for that lease and are served from its
// grant, and only once it is used up does the next of them lease again (100
// concurrent requests each leasing a batch took the whole budget at once).
import type { KeyRecord } from '../auth/types.js';
import type { KeyStore } from '../store/types.js';

export interface Limited {
  kind: 'requests' | 'tokens';
  limit: number;
  /** Seconds until the window resets. */
  resetS: number;
}

class Budget {
  window = -1;
  balance = 0;
  exhausted = false;
  /** The lease in flight for this window; resolves false when the store failed. */
  leasing: Promise<boolean> | null = null;
}

const WINDOW_MS = 60_000;

export class RateLimiter {
  private readonly budgets = new Map<string, Budget>();

  constructor(
    private readonly store: KeyStore | null,
    private readonly onStoreError: (err: unknown) => void = () => undefined,
  ) {}

  /** null when the request may go ahead; sync unless a lease must be fetched. */
  admit(key: KeyRecord, now = Date.now()): Limited | null | Promise<Limited | null> {
    if (this.store === null || (key.rpm === undefined && key.tpm === undefined)) return null;
    const window = Math.floor(now / WINDOW_MS);
    const resetS = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
    const req = key.rpm !== undefined ? this.take(key.id, 'req', window, key.rpm, 1) : true;
    const check = (ok: boolean): Limited | null | Promise<Limited | null> => {
      if (!ok) return { kind: 'requests', limit: key.rpm!, resetS };
      if (key.tpm === undefined) return null;
      // Tokens are known only afterwards: a request needs one unit of budget left.
      const tok = this.take(key.id, 'tok', window, key.tpm, 1);
      const verdict = (t: boolean): Limited | null => (t ? null : { kind: 'tokens', limit: key.tpm!, resetS });
      return tok instanceof Promise ? tok.then(verdict) : verdict(tok);
    };
    return req instanceof Promise ? req.then(check) : check(req);
  }

  /** Records the tokens a finished request used (beyond the unit admit() took). */
  consumeTokens(key: KeyRecord, tokens: number, now = Date.now()): void {
    if (this.store === null || key.tpm === undefined || tokens <= 1) return;
    const window = Math.floor(now / WINDOW_MS);
    const b = this.budget(key.id, 'tok', window);
    b.balance -= tokens - 1;
    if (b.balance < 0) {
      const deficit = -b.balance;
      b.balance = 0;
      void this.store.charge(key.id, 'tok', window, deficit).catch(() => undefined);
    }
  }

  private budget(keyId: string, kind: 'req' | 'tok', window: number): Budget {
    const k = kind + ':' + keyId;
    let b = this.budgets.get(k);
    if (b === undefined) {
      b = new Budget();
      this.budgets.set(k, b);
    }
    if (b.window !== window) {
      b.window = window;
      b.balance = 0;
      b.exhausted = false;
      b.leasing = null;
    }
    return b;
  }

  private take(keyId: string, kind: 'req' | 'tok', window: number, limit: number, n: number): boolean | Promise<boolean> {
    const b = this.budget(keyId, kind, window);
    if (b.balance >= n) {
      b.balance -= n;
      return true;
    }
    return this.waitForLease(b, keyId, kind, window, limit, n);
  }

  /** The balance is short: join the lease in flight (or start one) and take from its grant. */
  private waitForLease(b: Budget, keyId: string, kind: 'req' | 'tok', window: number, limit: number, n: number): boolean | Promise<boolean> {
    if (b.exhausted) return false;
    const leasing = b.leasing ?? this.lease(b, keyId, kind, window, limit, n);
    return leasing.then((storeOk) => {
      // The store is unreachable (fail open), or the window rolled over meanwhile.
      if (!storeOk || b.window !== window) return true;
      if (b.balance >= n) {
        b.balance -= n;
        return true;
      }
      // Used up by the requests served before this one: the next lease.
      return this.waitForLease(b, keyId, kind, window, limit, n);
    });
  }

  private lease(b: Budget, keyId: string, kind: 'req' | 'tok', window: number, limit: number, n: number): Promise<boolean> {
    const batch = Math.max(n, Math.floor(limit / 100));
    const p: Promise<boolean> = this.store!.lease(keyId, kind, window, batch, limit).then(
      (granted) => {
        if (b.leasing === p) b.leasing = null;
        if (b.window !== window) return true;
        b.balance += granted;
        if (b.balance < n) b.exhausted = true;
        return true;
      },
      // The store is unreachable: fail open rather than refuse every request.
      (err: unknown) => {
        if (b.leasing === p) b.leasing = null;
        this.onStoreError(err);
        return false;
      },
    );
    b.leasing = p;
    return p;
  }
}
