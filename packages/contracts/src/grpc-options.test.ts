import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, clientChannelOptions, etcdChannelOptions, serverChannelOptions } from './grpc-options.js';

describe('gRPC channel options', () => {
  const server = serverChannelOptions(2 * 1024 * 1024);
  const client = clientChannelOptions({ reconnectMaxMs: 5_000 });

  it('clients ping no more often than the server permits (else GOAWAY too_many_pings)', () => {
    expect(client['grpc.keepalive_time_ms']).toBeGreaterThanOrEqual(server['grpc.http2.min_ping_interval_without_data_ms']!);
    expect(server['grpc.keepalive_permit_without_calls']).toBe(1);
  });

  it('clients take what the server may send; the server takes what it is configured to', () => {
    expect(client['grpc.max_receive_message_length']).toBeGreaterThanOrEqual(server['grpc.max_send_message_length']!);
    expect(server['grpc.max_receive_message_length']).toBe(2 * 1024 * 1024);
  });

  it('sets one message limit on every link: head server, clients (agent, SDK) and the etcd client', () => {
    const full = serverChannelOptions();
    for (const opts of [full, client, etcdChannelOptions()]) {
      expect(opts['grpc.max_send_message_length']).toBe(MAX_MESSAGE_BYTES);
      expect(opts['grpc.max_receive_message_length']).toBe(MAX_MESSAGE_BYTES);
    }
    expect(serverChannelOptions(64 * 1024 * 1024)['grpc.max_receive_message_length']).toBe(MAX_MESSAGE_BYTES); // never above it
  });

  it('caps reconnect backoff where the caller says', () => {
    expect(client['grpc.max_reconnect_backoff_ms']).toBe(5_000);
    expect(clientChannelOptions()['grpc.max_reconnect_backoff_ms']).toBe(2_000);
  });
});
