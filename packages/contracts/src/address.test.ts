import { describe, expect, it } from 'vitest';
import { AddressError, formatHostPort, isHostPort, parseHostPort } from './address.js';

describe('host:port', () => {
  it.each([
    ['127.0.0.1:7400', '127.0.0.1', 7400],
    ['head-1.example:1', 'head-1.example', 1],
    ['[::1]:7400', '::1', 7400],
    ['[fe80::1%eth0]:65535', 'fe80::1%eth0', 65535],
    [' h:80 ', 'h', 80],
  ])('dials %s', (input, host, port) => {
    expect(parseHostPort(input, '--head')).toEqual({ host, port });
  });

  it.each(['', 'h', 'h:', ':7400', 'h:0', 'h:65536', 'h:99999', '::1:7400', 'a,b:1', 'a b:1', 'h:7400,h2:7400', '[]:1', 'h:-1', 'h:1.5'])('refuses %j to dial', (input) => {
    expect(isHostPort(input)).toBe(false);
    expect(() => parseHostPort(input, '--head')).toThrow(AddressError);
  });

  it('listens on any interface and any port', () => {
    expect(parseHostPort(':7400', '--listen', 'listen')).toEqual({ host: '0.0.0.0', port: 7400 });
    expect(parseHostPort('127.0.0.1:0', '--listen', 'listen')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(isHostPort('h:65536', 'listen')).toBe(false);
  });

  it('names the input and what it was for', () => {
    expect(() => parseHostPort('localhost', '--advertise-address')).toThrow(/^--advertise-address: expected host:port .*got "localhost"$/);
    try {
      parseHostPort('x', 'f');
    } catch (e) {
      expect(e).toMatchObject({ field: 'f', input: 'x' });
    }
  });

  it('formats back, bracketing IPv6', () => {
    expect(formatHostPort({ host: '::1', port: 1 })).toBe('[::1]:1');
    expect(formatHostPort(parseHostPort('h:2', 'x'))).toBe('h:2');
  });
});
