/**
 * Init container of the muster-worker DaemonSet: reads this pod's Node from
 * the Kubernetes API and writes the worker's topology as a config file
 * (`muster-worker run --config <file>`), because the downward API cannot
 * expose node labels to a pod.
 *
 *   labels        every node label under "muster.io/" (zone, rack, spot, ...) as is, plus
 *                 the mapped labels in MUSTER_LABEL_MAP ("from=to,..."; default
 *                 "topology.kubernetes.io/zone=muster.io/zone"), a "muster.io/" label
 *                 on the node winning over a mapped one
 *   nvlinkDomain  the first node label in MUSTER_NVLINK_DOMAIN_LABELS that is set
 *                 (default "muster.io/nvlink-domain,nvidia.com/gpu.clique")
 *
 * Environment: NODE_NAME (downward API spec.nodeName, required),
 * MUSTER_TOPOLOGY_OUT (default /run/muster/topology.json), the two maps above;
 * the API server and credentials as every pod sees them (KUBERNETES_SERVICE_HOST,
 * _PORT, the service account token and CA under
 * /var/run/secrets/kubernetes.io/serviceaccount). MUSTER_KUBE_API (a base URL)
 * and MUSTER_SA_DIR override those two, for tests.
 *
 * Plain Node.js, no dependencies: it runs from a ConfigMap in the worker image.
 * Any failure exits 1, so the pod does not start with a wrong topology.
 */
import { readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import http from 'node:http';
import https from 'node:https';

const env = process.env;
const saDir = env.MUSTER_SA_DIR || '/var/run/secrets/kubernetes.io/serviceaccount';
const out = env.MUSTER_TOPOLOGY_OUT || '/run/muster/topology.json';
const labelMap = pairs(env.MUSTER_LABEL_MAP ?? 'topology.kubernetes.io/zone=muster.io/zone');
const nvlinkLabels = (env.MUSTER_NVLINK_DOMAIN_LABELS ?? 'muster.io/nvlink-domain,nvidia.com/gpu.clique')
  .split(',').map((s) => s.trim()).filter(Boolean);

function pairs(raw) {
  return raw.split(',').map((s) => s.trim()).filter(Boolean).map((p) => {
    const i = p.indexOf('=');
    if (i < 1 || i === p.length - 1) fail(`MUSTER_LABEL_MAP: "${p}" is not from=to`);
    return [p.slice(0, i), p.slice(i + 1)];
  });
}

function fail(message) {
  console.error(JSON.stringify({ level: 'fatal', msg: 'worker topology failed', err: message }));
  process.exit(1);
}

/** Node labels → the worker's `labels` and `nvlinkDomain` options. */
function topologyOf(nodeLabels) {
  const labels = {};
  for (const [from, to] of labelMap) if (nodeLabels[from] !== undefined) labels[to] = nodeLabels[from];
  for (const [k, v] of Object.entries(nodeLabels)) {
    if (k.startsWith('muster.io/') && !nvlinkLabels.includes(k)) labels[k] = v;
  }
  const sorted = Object.fromEntries(Object.keys(labels).sort().map((k) => [k, labels[k]]));
  const domainLabel = nvlinkLabels.find((k) => nodeLabels[k]);
  return domainLabel ? { labels: sorted, nvlinkDomain: nodeLabels[domainLabel] } : { labels: sorted };
}

function getJson(url, headers, ca) {
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { headers, ca, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET ${url.pathname}: HTTP ${res.statusCode} ${body.slice(0, 300)}`));
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`GET ${url.pathname}: bad JSON: ${e.message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: timed out`)));
    req.on('error', reject);
  });
}

async function main() {
  const nodeName = env.NODE_NAME;
  if (!nodeName) fail('NODE_NAME is not set (downward API: spec.nodeName)');
  let base = env.MUSTER_KUBE_API;
  if (!base) {
    const host = env.KUBERNETES_SERVICE_HOST;
    if (!host) fail('KUBERNETES_SERVICE_HOST is not set: not running in a pod?');
    base = `https://${host.includes(':') ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT || '443'}`;
  }
  const url = new URL(`/api/v1/nodes/${encodeURIComponent(nodeName)}`, base);
  let token;
  let ca;
  try {
    token = readFileSync(join(saDir, 'token'), 'utf8').trim();
    if (url.protocol === 'https:') ca = readFileSync(join(saDir, 'ca.crt'));
  } catch (e) {
    fail(`service account credentials: ${e.message}`);
  }
  let node;
  for (let attempt = 1; ; attempt++) {
    try {
      node = await getJson(url, { authorization: `Bearer ${token}`, accept: 'application/json' }, ca);
      break;
    } catch (e) {
      if (attempt >= 3 || /HTTP 40[134]/.test(e.message)) fail(e.message);
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
  const topology = topologyOf(node?.metadata?.labels ?? {});
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(`${out}.tmp`, `${JSON.stringify(topology, null, 2)}\n`);
  renameSync(`${out}.tmp`, out);
  console.log(JSON.stringify({ level: 'info', msg: 'worker topology', node: nodeName, file: out, ...topology }));
}

await main();
