/**
 * The NATS users the head mints (docs/security.md, "NATS: users per role"):
 * one for itself, one per launch of a replica group's ranks (also the
 * credential the worker's HTTP bridge of that group connects with), and one
 * per caller asking GetDataPlaneAccess. Each is a fresh nkey pair and a user
 * JWT signed by the account signing key (`@muster/common/nats-auth`), with
 * the subject permissions of its role (`@muster/contracts` subjects.ts).
 * Nothing minted is stored: it goes to the one process it is for.
 *
 * Lifetimes: the head's and replicas' users do not expire (a rank lives as
 * long as it runs and cannot ask again); a caller's expires after
 * --nats-caller-ttl-ms and the SDK asks again before. Revocation of all of
 * them is a rotation of the account signing key (docs/security.md).
 */
import { readFile } from 'node:fs/promises';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { checkNatsSigner, mintNatsUser, type NatsSigner } from '@muster/common/nats-auth';
import { ALL_GROUPS, callerInboxPrefix, callerPermissions, headPermissions, mayCall, natsCredentialEnv, replicaPermissions, type Identity } from '@muster/contracts';
import { checkSecretFile, type SecretFileOptions } from '@muster/common';
import type { NatsAccess } from '@muster/proto';
import type { HeadConfig } from '../config.js';
import { blank, readNatsCa, type DataPlaneUsers } from './users.js';

export class NatsUsers implements DataPlaneUsers {
  private constructor(
    private readonly signer: NatsSigner,
    /** What anyone may know: servers, prefix, CA (ClusterInfo, Registered). */
    readonly publicAccess: NatsAccess,
    private readonly callerTtlMs: number,
    /** Keys the MAC of callers' inbox prefixes (derived from the cluster token). */
    private readonly inboxKey: Buffer,
  ) {}

  /** From the head's config: reads the seed file and the CA (both checked now, so a bad one fails the start). */
  static async fromConfig(config: HeadConfig, clusterSecret: string, secret: SecretFileOptions = {}): Promise<NatsUsers> {
    checkSecretFile(config.natsAccountSeedFile, '--nats-account-seed-file', secret);
    const seed = (await readFile(config.natsAccountSeedFile, 'utf8').catch((e: unknown) => {
      throw new Error(`--nats-account-seed-file ${config.natsAccountSeedFile}: ${(e as Error).message}`, { cause: e });
    })).trim();
    const signer = { account: config.natsAccount, seed };
    try {
      checkNatsSigner(signer);
    } catch (e) {
      throw new Error(`--nats-account-seed-file ${config.natsAccountSeedFile}: ${(e as Error).message}`, { cause: e });
    }
    const caPem = await readNatsCa(config);
    const inboxKey = createHash('sha256').update('muster inbox prefix\0').update(clusterSecret).digest();
    return new NatsUsers(signer, { ...blank(), servers: config.natsUrl, subjectPrefix: config.natsSubjectPrefix, caPem }, config.natsCallerTtlMs, inboxKey);
  }

  /** The head's own user: everything under the prefix. */
  head(headId: string): NatsAccess {
    const inboxPrefix = callerInboxPrefix(randomBytes(16).toString('hex'));
    const u = mintNatsUser(this.signer, `head ${headId}`, headPermissions(this.publicAccess.subjectPrefix, inboxPrefix));
    return { ...this.publicAccess, jwt: u.jwt, seed: u.seed, inboxPrefix, expiresAtMs: 0, groups: [ALL_GROUPS] };
  }

  /** The environment variables a rank of `group` (or its HTTP bridge) connects with. */
  replicaEnv(group: string): Record<string, string> {
    const u = mintNatsUser(this.signer, `replica ${group}`, replicaPermissions(this.publicAccess.subjectPrefix, group));
    return natsCredentialEnv({ servers: this.publicAccess.servers, jwt: u.jwt, seed: u.seed, caPem: this.publicAccess.caPem });
  }

  /**
   * A caller's user: it may call what `who` may call (every group for an
   * admin, its call rights for a caller or deployer, none for a viewer).
   */
  caller(who: Identity, renewing = '', nowMs = Date.now()): NatsAccess {
    const groups = callableGroups(who);
    const inboxPrefix = this.sealedInbox(who, renewing);
    const u = mintNatsUser(this.signer, `${who.role} ${who.name}`, callerPermissions(this.publicAccess.subjectPrefix, groups, inboxPrefix), this.callerTtlMs, nowMs);
    return { ...this.publicAccess, jwt: u.jwt, seed: u.seed, inboxPrefix, expiresAtMs: u.expiresAtMs, groups };
  }

  /**
   * A caller's inbox prefix: `_INBOX.<nonce><mac>`, the MAC binding the nonce
   * to the identity under a key derived from the cluster token (the same on
   * every head, and unchanged when the signing key rotates). A renewal that presents its prefix keeps it — the client's
   * connection cannot change its inbox — but only the identity it was minted
   * for can: another caller cannot ask for a prefix it saw on the wire.
   */
  private sealedInbox(who: Identity, renewing: string): string {
    const mac = (nonce: string) => createHmac('sha256', this.inboxKey).update(`${nonce}\0${who.role}\0${who.name}`).digest('hex').slice(0, 32);
    const m = /^_INBOX\.([0-9a-f]{16})([0-9a-f]{32})$/.exec(renewing);
    if (m && timingSafeEqual(Buffer.from(mac(m[1]!)), Buffer.from(m[2]!))) return renewing;
    const nonce = randomBytes(8).toString('hex');
    return callerInboxPrefix(nonce + mac(nonce));
  }
}

/** The groups of a caller's NATS permissions: ["*"] for all (one subject token matches any group name). */
export function callableGroups(who: Identity): string[] {
  if (who.role === 'admin' || (who.callGroups === 'all' && mayCall(who, ALL_GROUPS))) return [ALL_GROUPS];
  if (who.callGroups === 'all') return [];
  // A name that is not one subject token could widen the permission ("a.>"): such a right grants nothing.
  return who.callGroups.filter((g) => g !== ALL_GROUPS && /^[A-Za-z0-9_-]+$/.test(g) && mayCall(who, g));
}
