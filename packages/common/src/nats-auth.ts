/**
 * NATS decentralized auth (operator mode) for Muster: the trust chain a
 * launcher writes into nats-server's config (operator → system account and
 * the Muster account, with a signing key), and the user JWTs the head mints
 * from that signing key, one per role, each with its subject permissions
 * (`@muster/contracts` subjects.ts). Subpath `@muster/common/nats-auth`: the
 * SDK and ranks never load it (they only present a JWT and sign the server's
 * nonce with its seed, which nats.js does).
 *
 * Decisions (docs/security.md, "NATS: users per role"):
 *  - The head holds only the account's *signing* key, never the account's
 *    identity key or the operator's: rotating the signing key (a new one in
 *    the account JWT, the old one removed) revokes every user it minted and
 *    needs no new account.
 *  - A user's nkey pair is made for each minting and lives only where it is
 *    handed (a rank's environment, a client's memory): nothing is stored.
 *  - User JWTs are encoded here, synchronously, with nkeys' signature: the
 *    head mints them in the after-commit step that sends a launch order,
 *    which must not await (a stop staged after it would overtake it). The
 *    trust chain (operator, accounts) is encoded by `@nats-io/jwt`; both
 *    produce the same format (`ed25519-nkey` v2 claims), and tests decode
 *    the minted JWTs with that library and present them to a real server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { encodeAccount, encodeOperator } from '@nats-io/jwt';
import { createAccount, createOperator, createUser, fromSeed } from '@nats-io/nkeys';
import type { SubjectPermissions } from '@muster/contracts';

/** What `createNatsTrust` makes: the server's config material and the head's signing seed. */
export interface NatsTrust {
  operatorJwt: string;
  systemAccount: string;
  systemAccountJwt: string;
  /** The Muster account's public key (the head's `--nats-account`). */
  account: string;
  accountJwt: string;
  /** Seed of the account's signing key: the one secret the head needs (`--nats-account-seed-file`). */
  signingSeed: string;
  /**
   * The operator's and the account's identity seeds: what re-signs the
   * account JWT with other signing keys (`musterAccountJwt`, a rotation).
   * Nothing in Muster writes them anywhere; keep them offline or drop them.
   */
  operatorSeed: string;
  accountSeed: string;
}

const ACCOUNT_LIMITS = { subs: -1, conn: -1, leaf: -1, imports: -1, exports: -1, data: -1, payload: -1, wildcards: true };

/** The Muster account's JWT with these signing keys (public "A…" keys), signed by the operator. */
export async function musterAccountJwt(t: Pick<NatsTrust, 'operatorSeed' | 'accountSeed'>, signingKeys: readonly string[], name = 'muster'): Promise<string> {
  const enc = new TextEncoder();
  return encodeAccount(name, fromSeed(enc.encode(t.accountSeed)), { signing_keys: [...signingKeys], limits: ACCOUNT_LIMITS }, { signer: fromSeed(enc.encode(t.operatorSeed)) });
}

/** The public key of an nkey seed. */
export function publicKeyOf(seed: string): string {
  return fromSeed(new TextEncoder().encode(seed.trim())).getPublicKey();
}

/** A new account signing key: its public key and seed. */
export function newSigningKey(): { publicKey: string; seed: string } {
  const kp = createAccount();
  return { publicKey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
}

/** An operator, a system account and the Muster account with one signing key. */
export async function createNatsTrust(name = 'muster'): Promise<NatsTrust> {
  const operator = createOperator();
  const system = createAccount();
  const account = createAccount();
  const signer = createAccount();
  const systemAccount = system.getPublicKey();
  const operatorJwt = await encodeOperator(name, operator, { system_account: systemAccount });
  const systemAccountJwt = await encodeAccount('SYS', system, {}, { signer: operator });
  const dec = new TextDecoder();
  const seeds = { operatorSeed: dec.decode(operator.getSeed()), accountSeed: dec.decode(account.getSeed()) };
  const accountJwt = await musterAccountJwt(seeds, [signer.getPublicKey()], name);
  return { operatorJwt, systemAccount, systemAccountJwt, account: account.getPublicKey(), accountJwt, signingSeed: dec.decode(signer.getSeed()), ...seeds };
}

/** The account signing key the head mints with. */
export interface NatsSigner {
  /** The account's public key (issuer_account of every user). */
  account: string;
  /** The signing key's seed ("SA…"). */
  seed: string;
}

/** A minted user: its JWT and the nkey seed that proves it. */
export interface NatsUserCredential {
  jwt: string;
  seed: string;
  /** 0: does not expire. */
  expiresAtMs: number;
}

const b64url = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

/** Checks a signer once (at the head's start), so a bad seed file fails there, not at the first launch. */
export function checkNatsSigner(s: NatsSigner): void {
  const kp = fromSeed(new TextEncoder().encode(s.seed.trim()));
  if (!kp.getPublicKey().startsWith('A')) throw new Error('the NATS signing seed is not an account key (expected a seed starting "SA")');
  if (!/^A[A-Z2-7]{55}$/.test(s.account)) throw new Error(`the NATS account "${s.account}" is not an account public key (56 characters starting "A")`);
}

/**
 * A user JWT for `name` with `perms`, signed by the account signing key.
 * `ttlMs` 0: it does not expire. Synchronous (see the header).
 */
export function mintNatsUser(signer: NatsSigner, name: string, perms: SubjectPermissions, ttlMs = 0, nowMs = Date.now()): NatsUserCredential {
  const user = createUser();
  const kp = fromSeed(new TextEncoder().encode(signer.seed.trim()));
  const expiresAtMs = ttlMs > 0 ? nowMs + ttlMs : 0;
  const claim: Record<string, unknown> = {
    ...(expiresAtMs ? { exp: Math.floor(expiresAtMs / 1000) } : {}),
    iat: Math.floor(nowMs / 1000),
    iss: kp.getPublicKey(),
    name,
    sub: user.getPublicKey(),
    nats: {
      pub: { allow: perms.pub },
      sub: { allow: perms.sub },
      subs: -1,
      data: -1,
      payload: -1,
      issuer_account: signer.account,
      type: 'user',
      version: 2,
    },
  };
  claim.jti = createHash('sha512').update(JSON.stringify(claim)).update(randomBytes(8)).digest('base64url');
  const payload = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64url(JSON.stringify(claim))}`;
  const jwt = `${payload}.${b64url(kp.sign(new TextEncoder().encode(payload)))}`;
  return { jwt, seed: new TextDecoder().decode(user.getSeed()), expiresAtMs };
}

/** The operator-mode part of a nats-server config (memory resolver, both accounts preloaded). */
export function operatorConfig(t: Pick<NatsTrust, 'operatorJwt' | 'systemAccount' | 'systemAccountJwt' | 'account' | 'accountJwt'>): string[] {
  return [
    `operator: ${t.operatorJwt}`,
    `system_account: ${t.systemAccount}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${t.systemAccount}: ${t.systemAccountJwt}`,
    `  ${t.account}: ${t.accountJwt}`,
    '}',
  ];
}
