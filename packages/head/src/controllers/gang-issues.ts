/**
 * A refused gang spec as a list of issues (field path, message), kept in the
 * error's details next to its one-line message, so a caller that validates a
 * part of something bigger (a role of a gang, a replica group's gang) can
 * name each field as its own spec spells it instead of editing the message.
 */
import { ErrorCode, isMusterError, MusterError } from '@muster/common';

export interface GangIssue {
  /** `template.ports[0].name`, '' for the spec as a whole. */
  path: string;
  message: string;
}

/** INVALID_ARGUMENT "invalid gang spec: path: message; …" carrying `issues`. */
export function gangSpecError(issues: readonly GangIssue[], opts: { cause?: unknown; prefix?: string } = {}): MusterError {
  const why = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ');
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `${opts.prefix ?? 'invalid gang spec'}: ${why}`, { cause: opts.cause, details: { ...(issues.length === 1 ? { field: issues[0]!.path } : {}), fields: issues.map((i) => i.path), issues } });
}

/** The issues of an error gangSpecError made; undefined for any other error. */
export function gangIssuesOf(e: unknown): GangIssue[] | undefined {
  if (!isMusterError(e) || !Array.isArray(e.details.issues)) return undefined;
  return e.details.issues as GangIssue[];
}
