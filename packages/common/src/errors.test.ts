import { describe, expect, it } from 'vitest';
import { ErrorCode, MusterError, fromGrpcError, isMusterError, toGrpcError, toMusterError } from './errors.js';

describe('MusterError', () => {
  it('round-trips through the gRPC representation with its exact code', () => {
    for (const code of Object.values(ErrorCode)) {
      const wire = toGrpcError(new MusterError(code, `boom ${code}`));
      const back = fromGrpcError(wire);
      expect(back.code).toBe(code);
      expect(back.message).toBe(`boom ${code}`);
    }
  });

  it('carries the leader address of a NOT_LEADER refusal, and nothing for other errors', () => {
    const wire = toGrpcError(new MusterError(ErrorCode.NOT_LEADER, 'standby', { details: { leader: '10.0.0.7:7400' } }));
    expect(fromGrpcError(wire).details).toEqual({ leader: '10.0.0.7:7400' });
    expect(fromGrpcError(toGrpcError(new MusterError(ErrorCode.NOT_LEADER, 'no leader yet'))).details).toEqual({});
  });

  it('maps a plain gRPC error without our trailer by its status', () => {
    expect(fromGrpcError({ code: 14, details: 'No connection established' }).code).toBe(ErrorCode.UNAVAILABLE);
    // grpc-js's wording of a refused connection, as users should read it.
    expect(fromGrpcError({ code: 14, details: 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:7400. Resolution note: ' }).message).toBe('cannot connect: connect ECONNREFUSED 127.0.0.1:7400');
    expect(fromGrpcError({ code: 99, details: 'odd' }).code).toBe(ErrorCode.INTERNAL);
  });

  it('is recognised across package copies by its global brand, and keeps the cause', () => {
    const cause = new Error('root');
    const e = toMusterError(cause, ErrorCode.UNAVAILABLE);
    expect(isMusterError(e)).toBe(true);
    expect(e.cause).toBe(cause);
    const foreign = { [Symbol.for('muster.error')]: true, code: ErrorCode.INTERNAL };
    expect(isMusterError(foreign)).toBe(true);
    expect(isMusterError(new Error('x'))).toBe(false);
  });

  it('says which codes are retryable', () => {
    expect(new MusterError(ErrorCode.UNAVAILABLE, '').retryable).toBe(true);
    expect(new MusterError(ErrorCode.INVALID_ARGUMENT, '').retryable).toBe(false);
  });
});
