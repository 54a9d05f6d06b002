/**
 * `muster dashboard`: prints (with --open, also opens) a sign-in link to the
 * head's web dashboard. The link carries a one-time ticket in its fragment
 * (`https://head:port/#ticket=…`): the CLI asks the head for it over HTTPS
 * with its own credential — its client certificate, else the cluster token
 * — so the browser gets a session with the CLI's identity (a viewer's
 * certificate gives a viewer's dashboard). The ticket is good for one
 * sign-in within 60 s; it is not the token and opens nothing after that.
 *
 * Where the dashboard is: --url, else the `dashboard` of the context
 * (`--context`, else the current one; `muster up` writes it), even when the
 * credentials come from flags or the environment. docs/dashboard.md.
 */
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { execa } from 'execa';
import { loadClientContext, readToken } from '@muster/common';
import { addConnectionFlags, connectionOptions, type ConnectionFlags } from '../connection.js';

interface DashboardFlags extends ConnectionFlags {
  url?: string;
  open?: boolean;
}

export function dashboardCommand(program: Command): void {
  addConnectionFlags(
    program
      .command('dashboard')
      .description('print a sign-in link to the web dashboard (one-time, 60 s); --open opens it in a browser')
      .option('--url <url>', "the dashboard's URL, https://host:port (default: the context's, which `muster up` writes)")
      .option('--open', 'open the link with xdg-open (or open on macOS)'),
  ).action(async (flags: DashboardFlags) => {
    const link = await signInLink(flags);
    process.stdout.write(`${link}\n`);
    if (flags.open) {
      const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
      const r = await execa(opener, [link], { reject: false, stdio: 'ignore', detached: true });
      if (r.failed) process.stderr.write(`muster: could not run ${opener}; open the link above in a browser\n`);
    }
  });
}

/** Asks the head for a ticket with this CLI's credential and returns the link that signs a browser in. */
export async function signInLink(flags: DashboardFlags): Promise<string> {
  const opts = connectionOptions(flags);
  // The context gives the credentials only when the flags and environment leave them out (as for
  // every command); its dashboard URL is used whenever --url is not given.
  const named = await loadClientContext(typeof opts.context === 'string' ? opts.context : undefined, opts.configFile).catch((e: unknown) => {
    if (opts.context) throw e;
    return undefined;
  });
  const ctx = opts.context ? named : undefined;
  const url = flags.url ?? named?.dashboard;
  if (!url) throw new Error('no dashboard URL: give --url https://<head>:<port> (the head\'s --dashboard-listen), or use a context `muster up` wrote');
  const base = new URL(url);
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new Error(`--url: expected https://host:port, got "${url.slice(0, 200)}"`);
  const ca = opts.tls?.ca ?? ctx?.ca;
  const cert = opts.tls?.cert ?? (opts.tls ? undefined : ctx?.cert);
  const key = opts.tls?.key ?? (opts.tls ? undefined : ctx?.key);
  const tokenFile = opts.tokenFile ?? ctx?.tokenFile;
  const token = opts.token ?? (cert && key ? undefined : tokenFile ? await readToken(tokenFile) : undefined);
  if (!(cert && key) && !token) throw new Error('no credential: give a client certificate (--tls-cert/--tls-key) or the cluster token (--token-file)');
  const body = await post(new URL('/api/tickets', base), {
    ...(ca ? { ca: readFileSync(ca) } : {}),
    ...(cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : {}),
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
  });
  const { ticket } = JSON.parse(body) as { ticket?: string };
  if (!ticket) throw new Error(`the dashboard at ${base.origin} gave no ticket`);
  return `${base.origin}/#ticket=${ticket}`;
}

function post(url: URL, o: { ca?: Buffer; cert?: Buffer; key?: Buffer; headers: Record<string, string> }): Promise<string> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? request : httpRequest;
    const req = send(url, { method: 'POST', ...o, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c.slice(0, 65_536)));
      res.on('end', () => {
        if (res.statusCode === 200) return resolve(text);
        const msg = (() => {
          try {
            return (JSON.parse(text) as { error?: string }).error;
          } catch {
            return undefined;
          }
        })();
        reject(new Error(`dashboard ${url.origin}: ${res.statusCode} ${msg ?? text.slice(0, 200)}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`dashboard ${url.origin}: no answer within 10 s`)));
    req.on('error', reject);
    req.end('{}');
  });
}
