/** The vitest fixtures: fields that refuse to be read too early, and a nats-server that serves its client. */
import { describe, expect, it } from 'vitest';
import { useNats } from './vitest.js';

describe('useNats', () => {
  const early = useNats({ clientName: 'fixture-test' });
  let readTooEarly: unknown;
  try {
    void early.client;
  } catch (e) {
    readTooEarly = e;
  }

  it('says so when a field is read before beforeAll', () => {
    expect(String(readTooEarly)).toMatch(/useNats\(\)\.client is read before beforeAll/);
  });

  it('gives a running nats-server and a client connected to it', async () => {
    const sub = early.client.subscribe('fixture.echo', { max: 1 });
    const got = (async () => {
      for await (const m of sub) return m.string();
      return undefined;
    })();
    early.client.publish('fixture.echo', 'hello');
    expect(await got).toBe('hello');
    expect(early.server.process.running).toBe(true);
    expect(early.server.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
  });
});
