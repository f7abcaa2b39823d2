// On-demand prices of the machine types a run may use, for the estimate
// printed before any VM is created. One table, with the day it was read and
// its region; other regions cost up to ~30% more. Disks and egress are small
// beside the VMs for a run of minutes and are not counted.
export const PRICES = {
  date: '2026-12-01',
  region: 'us-central1',
  source: 'https://cloud.google.com/compute/vm-instance-pricing (on-demand, Linux)',
  usdPerHour: {
    'e2-medium': 0.033503,
    'e2-standard-2': 0.067006,
    'e2-standard-4': 0.134012,
    'e2-highcpu-2': 0.049468,
    'n2-standard-2': 0.097118,
    'n2-standard-4': 0.194236,
    'c3-standard-4': 0.20888,
  } as Record<string, number>,
} as const;

export interface Estimate {
  usd: number | null;
  text: string;
}

/** The cost of `vms` machines of `machineType` for `seconds` (rounded up to whole minutes, as billed after the first). */
export function estimateCost(machineType: string, vms: number, seconds: number): Estimate {
  const hourly = PRICES.usdPerHour[machineType];
  const minutes = Math.max(1, Math.ceil(seconds / 60));
  if (hourly === undefined) {
    return { usd: null, text: `${vms} × ${machineType} for about ${minutes} min: no price for ${machineType} in the table (prices of ${PRICES.date}, ${PRICES.region})` };
  }
  const usd = hourly * vms * (minutes / 60);
  return {
    usd,
    text: `${vms} × ${machineType} for about ${minutes} min ≈ $${usd.toFixed(2)} (at $${hourly}/h, ${PRICES.region} on-demand prices of ${PRICES.date})`,
  };
}
