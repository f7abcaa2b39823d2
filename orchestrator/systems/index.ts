// The systems by name: the built-in ones and those a matrix describes under `custom`.
import type { Matrix } from '../matrix/types.js';
import { baseline } from './baseline.js';
import { customSystem } from './custom.js';
import { nginx } from './nginx.js';
import { portkey } from './portkey.js';
import { sluice, sluiceRedis } from './sluice.js';
import type { SystemModule } from './types.js';

const BUILTIN: Record<string, SystemModule> = { baseline, sluice, 'sluice-redis': sluiceRedis, nginx, portkey };

export function systemModule(name: string, m: Matrix): SystemModule {
  const b = BUILTIN[name];
  if (b !== undefined) return b;
  const c = m.custom[name];
  if (c === undefined) throw new Error(`unknown system "${name}"`);
  return customSystem(name, c);
}
