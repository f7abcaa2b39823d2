// `sluice orchestrator gc --provider gcp`: finds the VMs labelled as sluice's
// (what a crashed or --keep run left) and deletes them with --yes.
import { prepareCredentials } from './credentials.js';
import { deleteVms, listSluiceVms } from './fleet.js';
import type { ClientOptions } from 'google-gax';

export interface GcOptions {
  project: string;
  yes: boolean;
  onGce: boolean;
  /** Client options (tests: the fake Compute server). */
  client?: ClientOptions;
  out?: (line: string) => void;
}

/** Returns the number of VMs found (deleted with `yes`). */
export async function gcGcp(o: GcOptions): Promise<number> {
  const out = o.out ?? ((l: string) => process.stdout.write(l + '\n'));
  if (o.client === undefined) prepareCredentials({ onGce: o.onGce });
  const vms = await listSluiceVms(o.project, o.client);
  if (vms.length === 0) {
    out(`no VM of sluice's in ${o.project}`);
    return 0;
  }
  for (const v of vms) out(`${v.name}  ${v.zone}  run ${v.runId}`);
  if (!o.yes) {
    out(`${vms.length} VM${vms.length === 1 ? '' : 's'} of sluice's; delete them with --yes`);
    return vms.length;
  }
  await deleteVms(o.project, vms, o.client);
  out(`deleted ${vms.length} VM${vms.length === 1 ? '' : 's'}`);
  return vms.length;
}
