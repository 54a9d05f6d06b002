/**
 * The worker's own check of its inventory against NODE_LIMITS (@muster/contracts),
 * the bounds the head applies to every registration (head/src/cluster/validate.ts):
 * a node past one fails at start with the field and the limit named, instead
 * of retrying a registration the head refuses. `muster-worker inventory` still
 * prints what it found (it does not call this).
 */
import { ErrorCode, MusterError } from '@muster/common';
import { NODE_LIMITS } from '@muster/contracts';
import type { NodeInventory } from '@muster/proto';

/** Each bound `inv` passes, as "field: what; the limit is N (name)". */
export function inventoryLimitProblems(inv: NodeInventory): string[] {
  const out: string[] = [];
  const L = NODE_LIMITS;
  if (inv.gpus.length > L.gpus) out.push(`inventory.gpus: ${inv.gpus.length} GPUs; the limit is ${L.gpus} (gpus: the head's scheduler handles at most ${L.gpus} GPUs per node)`);
  inv.gpus.forEach((g, i) => {
    if (g.mig.length > L.migSlicesPerGpu) out.push(`inventory.gpus[${i}].mig: ${g.mig.length} MIG slices; the limit is ${L.migSlicesPerGpu} (migSlicesPerGpu)`);
    if (g.uuid.length > L.uuidLength) out.push(`inventory.gpus[${i}].uuid: ${g.uuid.length} characters; the limit is ${L.uuidLength} (uuidLength)`);
    g.mig.forEach((m, k) => {
      if (m.uuid.length > L.uuidLength) out.push(`inventory.gpus[${i}].mig[${k}].uuid: ${m.uuid.length} characters; the limit is ${L.uuidLength} (uuidLength)`);
    });
  });
  const custom = Object.keys(inv.customResources).length;
  if (custom > L.customResources) out.push(`inventory.customResources: ${custom} entries; the limit is ${L.customResources} (customResources)`);
  const nics = inv.topology?.nics.length ?? 0;
  if (nics > L.nics) out.push(`inventory.topology.nics: ${nics} NICs; the limit is ${L.nics} (nics)`);
  return out;
}

/** Throws MUSTER_INVALID_ARGUMENT naming every bound `inv` passes. */
export function checkInventoryLimits(inv: NodeInventory): NodeInventory {
  const problems = inventoryLimitProblems(inv);
  if (problems.length === 0) return inv;
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `this node's inventory is past what a head accepts: ${problems.slice(0, 5).join('; ')}`, { details: { fields: problems.map((p) => p.slice(0, p.indexOf(':'))) } });
}
