/** The workloads `--workload` names. */
import type { Workload } from './common';
import { KubernetesWorkload } from './kubernetes';
import { LeaseLockWorkload } from './lease-lock';
import { ListAppendWorkload } from './list-append';
import { RegisterWorkload } from './register';

export const WORKLOADS: Readonly<Record<string, () => Workload>> = {
  register: () => new RegisterWorkload(),
  'list-append': () => new ListAppendWorkload(),
  kubernetes: () => new KubernetesWorkload(),
  'lease-lock': () => new LeaseLockWorkload(),
};

export function makeWorkload(name: string): Workload {
  const f = WORKLOADS[name];
  if (f === undefined) throw new Error(`unknown workload "${name}" (known: ${Object.keys(WORKLOADS).join(', ')})`);
  return f();
}
