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
  /** The cluster CA file a client verifies heads with. */
  TLS_CA: 'MUSTER_TLS_CA',
  /** The client's certificate file (its identity: role, name, call rights). */
  TLS_CERT: 'MUSTER_TLS_CERT',
  /** The client's private key file. */
  TLS_KEY: 'MUSTER_TLS_KEY',
  /** "true": plaintext gRPC to a head started with --insecure. */
  INSECURE: 'MUSTER_INSECURE',
  /** The client config file with contexts (default ~/.muster/config.yaml). */
  CONFIG: 'MUSTER_CONFIG',
  /** The context of the config file to use (default: its current-context). */
  CONTEXT: 'MUSTER_CONTEXT',
} as const;
