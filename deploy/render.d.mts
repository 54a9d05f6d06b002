/** Types of deploy/render.mjs, for the tests that import it. */

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface Rendered {
  objects: KubeObject[];
  yaml: string;
}

export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

export class RenderError extends Error {}

export const deployDir: string;
export const repoRoot: string;
export const kubernetesDir: string;
export const overlaysDir: string;
export const renderedDir: string;

export function overlayNames(): string[];
export function renderedPath(overlay: string): string;
export function renderOverlay(name: string): Rendered;
export function renderDir(dir: string, label?: string): Rendered;
export function applyJsonPatch<T>(doc: T, ops: JsonPatchOp[], where?: string): T;
export function parseImage(image: string): { name: string; tag: string | undefined; digest: string | undefined };
export function canonical<T>(v: T, depth?: number): T;
export function staleRendered(): { overlay: string; path: string }[];
