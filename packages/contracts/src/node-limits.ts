/**
 * Upper bounds on what one agent may report about its node: the head refuses
 * a registration past one, naming the field (head/src/cluster/validate.ts),
 * and the worker checks its discovered or simulated inventory against the same
 * numbers before it registers (worker/src/inventory/limits.ts).
 *
 * Why these numbers: a node's record is stored, answered by GetNode and
 * ListNodes and registered in one message, so its largest encoding must stay
 * under 1 MiB (issue 15). The bounds follow what real hardware reports and
 * what the scheduler accepts:
 *   gpus             32: the scheduler's GPU sets are 32-bit masks
 *                    (head/src/scheduler/bits.ts); the largest nodes sold
 *                    carry 8 or 16 GPUs. A node with more could register
 *                    before but was never scheduled on (`node-unsupported`).
 *   migSlicesPerGpu  8: NVIDIA's A100, H100 and H200 split a GPU into at most
 *                    7 MIG instances; one more leaves room without letting a
 *                    report of 64 slices per GPU through.
 *   uuidLength       64: nvidia-smi prints "GPU-" + a 36-character UUID (40)
 *                    and MIG devices as "MIG-" + UUID (40) or the older
 *                    "MIG-GPU-<uuid>/<gi>/<ci>" (about 50). A UUID is copied
 *                    into every placement and rank that uses the device.
 *   customResources  64: as a bundle may ask for (SPEC_LIMITS.customResources).
 *   topology links   follow from gpus: gpus × gpus entries (1,024), one per
 *                    GPU per NIC.
 * The largest node record these allow encodes in 131,132 bytes (128 KiB;
 * head/src/controllers/record-bounds.test.ts builds and encodes it).
 */
export const NODE_LIMITS = {
  /** GPUs of one node (the scheduler's mask width). */
  gpus: 32,
  /** MIG slices of one GPU (NVIDIA's maximum is 7). */
  migSlicesPerGpu: 8,
  /** A GPU's or a MIG slice's UUID. */
  uuidLength: 64,
  /** A GPU's model name ("NVIDIA H100 80GB HBM3"). */
  gpuNameLength: 256,
  /** Custom resources a node reports. */
  customResources: 64,
  /** NICs in the GPU topology. */
  nics: 64,
} as const;

export type NodeLimit = keyof typeof NODE_LIMITS;
