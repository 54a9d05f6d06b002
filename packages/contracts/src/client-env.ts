/**
 * The variables a client of the cluster reads to find it: the CLI, the SDK's
 * examples and programs started by `muster up` (which prints them) agree on
 * these names. They are not shard variables: a process gets them from its
 * user, not from the head.
 */
export const CLIENT_ENV = {
  /** Head address, or every head of an HA cluster comma-separated. */
  ADDRESS: 'MUSTER_ADDRESS',
  /** File holding the cluster token. */
  TOKEN_FILE: 'MUSTER_TOKEN_FILE',
  /** The cluster token itself (prefer TOKEN_FILE: an environment is easy to leak). */
  TOKEN: 'MUSTER_TOKEN',
} as const;
