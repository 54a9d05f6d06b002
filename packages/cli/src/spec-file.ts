/**
 * Reads a spec file (YAML or JSON; JSON is YAML) for `muster apply`,
 * `muster pg create` and `muster gang launch`, and checks it with the SDK's
 * strict schema before any connection is made: an unknown key is refused
 * with the file, its path and a "did you mean" (`rg.yaml: invalid replica
 * group spec: resource: unknown key; did you mean "resources"?`), and
 * nothing reaches the head.
 *
 * `kind:` is allowed at the top (as in a Kubernetes manifest) and must then
 * name what the command makes; it is dropped before the check.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { ErrorCode, MusterError, isMusterError } from '@muster/sdk';

export async function readSpecFile<T>(file: string, kind: string, check: (input: unknown) => T): Promise<T> {
  let doc: unknown;
  try {
    doc = parseYaml(await readFile(file, 'utf8'));
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${file}: ${(e as Error).message}`, { cause: e });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${file}: expected a ${kind} spec (a mapping of keys), got ${doc === null ? 'nothing' : Array.isArray(doc) ? 'a list' : typeof doc}`);
  }
  const { kind: given, ...spec } = doc as Record<string, unknown>;
  if (given !== undefined && given !== kind) throw new MusterError(ErrorCode.INVALID_ARGUMENT, `${file}: kind "${String(given)}" is not something this command knows (${kind})`);
  try {
    return check(spec);
  } catch (e) {
    if (isMusterError(e)) throw new MusterError(e.code, `${file}: ${e.message}`, { cause: e, details: e.details });
    throw e;
  }
}
