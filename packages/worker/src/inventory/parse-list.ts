/**
 * Parser for `nvidia-smi -L`: the GPUs with their UUIDs, and the MIG devices
 * under each GPU that has MIG enabled.
 *
 *   GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16)
 *     MIG 1g.10gb     Device  0: (UUID: MIG-feb88891-0321-5fef-9c87-d4af3b54259e)
 *
 * Drivers before R470 printed MIG UUIDs as `MIG-GPU-<gpu uuid>/<gi>/<ci>` and
 * single-spaced the MIG line; both forms are read. Profiles are taken as
 * printed (1g.10gb, 1g.10gb+me, 1c.3g.40gb, ...). Every line must be a GPU
 * line, a MIG line under a GPU, or blank; anything else is an error naming it.
 */
import { GPU_UUID, numberedLines, parseError } from './parse-util.js';

export interface ListMig {
  line: number;
  /** The MIG device index within its GPU ("Device 3"). */
  index: number;
  profile: string;
  uuid: string;
}

export interface ListGpu {
  line: number;
  index: number;
  name: string;
  uuid: string;
  mig: ListMig[];
}

const SRC = '-L' as const;
/** The name may hold anything but another "(UUID:" (two lines run together). */
const GPU_LINE = /^GPU (\d+): ((?:(?!\(UUID:).)+?) \(UUID: ([^)\s]+)\)$/;
const MIG_LINE = /^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: ([^)\s]+)\)$/;
const HEX_UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const MIG_UUID = new RegExp(`^MIG-(${HEX_UUID}|GPU-${HEX_UUID}/\\d+/\\d+)$`);
/** A MIG profile: <n>g.<mem>gb, optionally with a compute-instance prefix (1c.) and media suffix (+me). */
const MIG_PROFILE = /^(\d+c\.)?\d+g\.\d+gb(\+[a-z]+)?$/;

export function parseGpuList(text: string): ListGpu[] {
  const gpus: ListGpu[] = [];
  const lines = numberedLines(text).filter((l) => l.text.trim() !== '');
  if (lines.length === 1 && /^No devices were found/.test(lines[0]!.text.trim())) return [];
  for (const line of lines) {
    const g = GPU_LINE.exec(line.text.trimEnd());
    if (g) {
      const [, index = '', name = '', uuid = ''] = g;
      if (!GPU_UUID.test(uuid)) throw parseError(SRC, line.no, `'${uuid}' is not a GPU UUID`);
      const expected = gpus.length;
      if (Number(index) !== expected) throw parseError(SRC, line.no, `expected GPU ${expected}, found GPU ${index}`);
      if (gpus.some((x) => x.uuid === uuid)) throw parseError(SRC, line.no, `GPU UUID ${uuid} listed twice`);
      gpus.push({ line: line.no, index: Number(index), name, uuid, mig: [] });
      continue;
    }
    const mig = MIG_LINE.exec(line.text.trimEnd());
    if (mig) {
      const [, profile = '', index = '', uuid = ''] = mig;
      const gpu = gpus.at(-1);
      if (!gpu) throw parseError(SRC, line.no, 'MIG device before any GPU line');
      if (!MIG_PROFILE.test(profile)) throw parseError(SRC, line.no, `'${profile}' is not a MIG profile like 1g.10gb`);
      if (!MIG_UUID.test(uuid)) throw parseError(SRC, line.no, `'${uuid}' is not a MIG UUID`);
      if (gpu.mig.some((m) => m.index === Number(index))) throw parseError(SRC, line.no, `MIG device ${index} of GPU ${gpu.index} listed twice`);
      if (gpus.some((x) => x.mig.some((m) => m.uuid === uuid))) throw parseError(SRC, line.no, `MIG UUID ${uuid} listed twice`);
      gpu.mig.push({ line: line.no, index: Number(index), profile, uuid });
      continue;
    }
    throw parseError(SRC, line.no, `expected 'GPU <n>: <name> (UUID: ...)' or a MIG device line, found '${line.text.trim().slice(0, 60)}'`);
  }
  return gpus;
}
