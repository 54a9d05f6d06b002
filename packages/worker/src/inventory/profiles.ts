/**
 * Simulated nodes for development and tests (`--profile NAME`).
 *
 * Each profile describes a machine class (GPU model and memory, NVLink
 * wiring, PCIe/NUMA placement of GPUs and NICs, CPU and memory); the table
 * is @muster/contracts' (profiles.ts), shared with the head's scheduler
 * tests and benchmarks. Here a profile is rendered to nvidia-smi text
 * (render.ts) with stable fake UUIDs, then parsed like a real node.
 * A profile can also be a directory of recorded nvidia-smi output
 * (`--profile ./recorded/node7`): topo.txt, query-gpu.csv, list.txt, any subset.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, MusterError } from '@muster/common';
import { gpuLinks, MACHINE_PROFILES, nicGpuLinks, nicLinks, type MachineProfile } from '@muster/contracts';
import type { SmiTexts } from './assemble.js';
import { renderList, renderQueryGpu, renderTopo, type RenderGpu } from './render.js';

export interface Profile {
  texts: SmiTexts;
  source: string;
  /** The simulated machine's CPU threads and memory; undefined: the host's. */
  cpuCores?: number;
  memoryBytes?: number;
  nvlinkDomain?: string;
}

/** Stable fake UUIDs, so a profile is the same machine on every run. */
function uuid(prefix: 'GPU' | 'MIG', key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  return `${prefix}-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** nvidia-smi's output for a machine profile. */
function render(m: MachineProfile): SmiTexts {
  if (!m.gpu) return {};
  const gpu = m.gpu;
  const gpus: RenderGpu[] = m.gpuPlaces.map((place, i) => {
    const slices = m.mig?.[i] ?? [];
    const migEnabled = slices.length > 0 ? true : gpu.mig;
    return {
      name: gpu.name,
      memoryMiB: gpu.memoryMiB,
      pciBusId: m.busIds[i]!.includes(':') ? m.busIds[i]! : `00000000:${m.busIds[i]}:00.0`,
      uuid: uuid('GPU', `${m.name}/${i}`),
      ...(migEnabled === undefined ? {} : { migEnabled }),
      mig: slices.map((profile, k) => ({ profile, uuid: uuid('MIG', `${m.name}/${i}/${k}`) })),
      cpuAffinity: m.cpuAffinity(place.numa),
      numaAffinity: m.numaAffinity?.(place.numa) ?? String(place.numa),
      ...(m.gpuNumaId ? { gpuNumaId: m.gpuNumaId(i) } : {}),
    };
  });
  return {
    topo: renderTopo({ gpus, links: gpuLinks(m), nics: nicGpuLinks(m), nicLinks: nicLinks(m), nicStyle: m.nicStyle ?? 'legend' }),
    queryGpu: renderQueryGpu(gpus),
    list: renderList(gpus),
  };
}

/** Names accepted by --profile (besides a directory of recorded output). */
export const profileNames: string[] = [...MACHINE_PROFILES.keys()];

export function profileDescriptions(): { name: string; description: string }[] {
  return [...MACHINE_PROFILES.values()].map((p) => ({ name: p.name, description: p.description }));
}

/** Recorded-output file names a profile directory may hold, per source. */
const RECORDED: Record<'topo' | 'queryGpu' | 'list', string[]> = {
  topo: ['topo.txt'],
  queryGpu: ['query-gpu.csv', 'query-gpu.txt'],
  list: ['list.txt'],
};

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

export async function loadProfile(name: string): Promise<Profile> {
  const def = MACHINE_PROFILES.get(name);
  if (def) {
    return {
      texts: render(def),
      source: `simulated:${name}`,
      cpuCores: def.cpuCores,
      memoryBytes: def.memoryBytes,
      ...(def.nvlinkDomain ? { nvlinkDomain: def.nvlinkDomain } : {}),
    };
  }
  if (await isDirectory(name)) {
    const texts: SmiTexts = {};
    for (const [key, files] of Object.entries(RECORDED) as [keyof typeof RECORDED, string[]][]) {
      for (const file of files) {
        const text = await readFile(join(name, file), 'utf8').catch(() => undefined);
        if (text !== undefined) {
          texts[key] = text;
          break;
        }
      }
    }
    if (Object.keys(texts).length === 0) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `profile directory ${name} holds none of topo.txt, query-gpu.csv, list.txt`, {
        details: { field: 'profile', profile: name },
      });
    }
    return { texts, source: 'files' };
  }
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown profile '${name}'; known profiles: ${profileNames.join(', ')} (or a directory of recorded nvidia-smi output)`, {
    details: { field: 'profile', profile: name, known: profileNames },
  });
}
