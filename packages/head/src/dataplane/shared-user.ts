/**
 * The legacy data plane: one NATS user and password shared by the head,
 * every replica and every caller (`--nats-user`, the password from
 * MUSTER_NATS_PASSWORD). Kept so deployments configured that way still start
 * while they move to operator mode; the head logs a warning at every start.
 *
 * What it gives away, on purpose and written down (docs/security.md, "NATS:
 * users per role"): every rank and every client holding the password can
 * read every request and reply and publish anything — the threat operator
 * mode removes. The password is still never stored with a spec: it goes
 * into launch orders as they are sent and into GetDataPlaneAccess answers.
 */
import { ALL_GROUPS, natsCredentialEnv, type Identity } from '@muster/contracts';
import type { NatsAccess } from '@muster/proto';
import type { HeadConfig } from '../config.js';
import { blank, readNatsCa, type DataPlaneUsers } from './users.js';

export class SharedNatsUser implements DataPlaneUsers {
  private constructor(
    readonly publicAccess: NatsAccess,
    private readonly user: string,
    private readonly password: string,
  ) {}

  static async fromConfig(config: HeadConfig): Promise<SharedNatsUser> {
    const caPem = await readNatsCa(config);
    return new SharedNatsUser({ ...blank(), servers: config.natsUrl, subjectPrefix: config.natsSubjectPrefix, caPem }, config.natsUser, config.natsPassword);
  }

  head(): NatsAccess {
    return this.access();
  }

  replicaEnv(): Record<string, string> {
    const { servers, caPem } = this.publicAccess;
    return natsCredentialEnv({ servers, jwt: '', seed: '', caPem, user: this.user, password: this.password });
  }

  caller(_who: Identity): NatsAccess {
    return this.access();
  }

  private access(): NatsAccess {
    return { ...this.publicAccess, user: this.user, password: this.password, groups: [ALL_GROUPS] };
  }
}
