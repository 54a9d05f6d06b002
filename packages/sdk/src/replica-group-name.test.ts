/**
 * replicaGroups.get() with a name outside the head's rule
 * (REPLICA_GROUP_NAME_PATTERN of @muster/contracts) answers NOT_FOUND without
 * a request to the head: such a group can never exist.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@muster/common';
import { ReplicaGroups } from './replica-groups.js';

describe('replicaGroups.get', () => {
  it('refuses a name no group can have without asking the head', async () => {
    let asked = 0;
    const head = { call: () => ((asked++, Promise.reject(new Error('the head was asked')))) };
    const groups = new ReplicaGroups(head as never, () => Promise.reject(new Error('no data plane')));
    for (const name of ['LLM', 'a'.repeat(43), '-x', 'x_y', '']) await expect(groups.get(name)).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    await expect(groups.get('a'.repeat(42))).rejects.toThrow('the head was asked');
    expect(asked).toBe(1);
  });
});
