/**
 * Validation of an agent's Register message: the proto decoder guarantees
 * types, this guarantees sense. Every error names the field, so an operator
 * can fix the agent's flags or inventory ("inventory.gpus[3].memoryMib:
 * 9000000000 MiB is absurd (max 4194304)").
 */
import { z } from 'zod';
import { ErrorCode, MusterError } from '@muster/common';
import { NODE_LIMITS } from '@muster/contracts';
import type { Register } from '@muster/proto';

const LINK = /^(X|NV\d{1,3}|PIX|PXB|PHB|NODE|SYS|SOC)$/;
export const NODE_ID = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const LABEL_KEY = /^([A-Za-z0-9][A-Za-z0-9.-]{0,252}\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const MAX_GPUS = NODE_LIMITS.gpus;
const UUID = z.string().max(NODE_LIMITS.uuidLength, `more than ${NODE_LIMITS.uuidLength} characters (uuidLength)`);

const finiteNonNeg = z.number().finite().min(0, 'must not be negative');

const inventorySchema = z
  .object({
    hostname: z.string().max(253),
    cpuCores: z.number().int().min(0).max(16_384, 'more than 16384 cores is absurd'),
    memoryBytes: z.number().int().min(0).max(2 ** 50, 'more than 1 PiB of memory is absurd'),
    gpus: z
      .array(
        z.object({
          index: z.number().int().min(0).max(MAX_GPUS - 1),
          uuid: UUID,
          name: z.string().max(NODE_LIMITS.gpuNameLength),
          memoryMib: z.number().int().min(0).max(4 * 1024 * 1024, 'more than 4 TiB of GPU memory is absurd'),
          numaNode: z.number().int().min(0).max(1024).optional(),
          mig: z
            .array(z.object({ profile: z.string().min(1).max(64), uuid: UUID, index: z.number().int().min(0) }))
            .max(NODE_LIMITS.migSlicesPerGpu, `more than ${NODE_LIMITS.migSlicesPerGpu} MIG slices on one GPU (migSlicesPerGpu; NVIDIA's maximum is 7)`),
          pciBusId: z.string().max(64),
        }),
      )
      .max(MAX_GPUS, `more than ${MAX_GPUS} GPUs on one node (gpus; the scheduler's GPU sets are ${MAX_GPUS} wide)`),
    topology: z
      .object({
        links: z.array(z.string().regex(LINK, 'not a link kind nvidia-smi prints')).max(MAX_GPUS * MAX_GPUS, `more than ${MAX_GPUS}×${MAX_GPUS} links`),
        nvlinkIslands: z.array(z.object({ gpuIndices: z.array(z.number().int().min(0)).max(MAX_GPUS) })).max(MAX_GPUS),
        nics: z.array(z.object({ name: z.string().min(1).max(64), links: z.array(z.string().regex(LINK)) })).max(NODE_LIMITS.nics, `more than ${NODE_LIMITS.nics} NICs (nics)`),
      })
      .optional(),
    nvlinkDomain: z.string().max(128),
    source: z.string().max(128),
    customResources: z
      .record(z.string().regex(LABEL_KEY, 'not a valid resource name'), finiteNonNeg)
      .superRefine((c, ctx) => {
        const n = Object.keys(c).length;
        if (n > NODE_LIMITS.customResources) ctx.addIssue({ code: 'custom', message: `${n} custom resources; the limit is ${NODE_LIMITS.customResources} (customResources)` });
      }),
  })
  .superRefine((inv, ctx) => {
    const n = inv.gpus.length;
    const seen = new Set<number>();
    inv.gpus.forEach((g, i) => {
      if (seen.has(g.index)) ctx.addIssue({ code: 'custom', path: ['gpus', i, 'index'], message: `duplicate GPU index ${g.index}` });
      seen.add(g.index);
    });
    const topo = inv.topology;
    if (!topo) return;
    if (topo.links.length !== n * n) {
      ctx.addIssue({ code: 'custom', path: ['topology', 'links'], message: `expected ${n}×${n}=${n * n} entries for ${n} GPUs, got ${topo.links.length}` });
    }
    topo.nics.forEach((nic, i) => {
      if (nic.links.length !== n) ctx.addIssue({ code: 'custom', path: ['topology', 'nics', i, 'links'], message: `expected one link per GPU (${n}), got ${nic.links.length}` });
    });
    const covered = topo.nvlinkIslands.flatMap((isl) => isl.gpuIndices);
    if (covered.length !== n || new Set(covered).size !== n || covered.some((i) => !seen.has(i))) {
      ctx.addIssue({ code: 'custom', path: ['topology', 'nvlinkIslands'], message: 'every GPU must be in exactly one island' });
    }
  });

const registerSchema = z.object({
  nodeId: z.string().regex(NODE_ID, 'must be 1-63 letters, digits, ".", "_" or "-", starting and ending alphanumeric'),
  incarnation: z.string().min(1, 'must be set (a fresh id per agent start)').max(128),
  agentVersion: z.string().max(64),
  address: z.string().max(255),
  labels: z
    .record(z.string().regex(LABEL_KEY, 'not a valid label key'), z.string().max(63, 'label values are at most 63 characters'))
    .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels'),
  taints: z
    .array(z.object({ key: z.string().regex(LABEL_KEY), value: z.string().max(63), effect: z.enum(['NoSchedule', 'PreferNoSchedule']) }))
    .max(32),
  inventory: inventorySchema,
});

/** Throws MUSTER_INVALID_ARGUMENT naming the first bad fields. */
export function validateRegister(reg: Register | undefined): Register {
  if (!reg) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'first message on the agent stream must be "register" (it was missing, or a field had the wrong wire type)', { details: { field: 'register' } });
  }
  const r = registerSchema.safeParse(reg);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.').replace(/\.(\d+)/g, '[$1]')}: ${i.message}`);
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid registration of node "${reg.nodeId}": ${issues.join('; ')}`, {
      details: { fields: r.error.issues.map((i) => i.path.join('.')) },
    });
  }
  return reg;
}
