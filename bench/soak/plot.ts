/**
 * Draws a soak run's curves as one SVG (docs/soak/*.svg): store keys, store
 * bytes, head RSS, p99 control-call latency and gang lifecycles a minute,
 * one small panel each, from the JSON lines bench/soak/run.ts printed.
 * Plain SVG, no dependency: five polylines and their axis labels.
 *
 *   npx tsx bench/soak/plot.ts <soak output file> <out.svg> [title]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Sample } from './soak.js';

const [input, output, title = 'soak'] = process.argv.slice(2);
if (!input || !output) throw new Error('usage: plot.ts <soak output file> <out.svg> [title]');

const samples: Sample[] = readFileSync(input, 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('{"t"'))
  .map((l) => JSON.parse(l) as Sample);
if (samples.length < 2) throw new Error(`${input}: fewer than two samples`);

const perMinute = samples.map((s, i) => {
  const prev = samples[i - 1];
  const dt = prev ? s.t - prev.t : s.t;
  return ((s.churn.gangLifecycles - (prev?.churn.gangLifecycles ?? 0)) * 60) / Math.max(1, dt);
});
const panels: { name: string; values: number[]; unit: string }[] = [
  { name: 'store keys', values: samples.map((s) => s.storeKeys), unit: '' },
  { name: 'store bytes (logical)', values: samples.map((s) => s.storeBytes / 1024), unit: ' KiB' },
  { name: 'head RSS', values: samples.map((s) => s.headRssMiB), unit: ' MiB' },
  { name: 'p99 GetClusterInfo', values: samples.map((s) => s.p99Ms), unit: ' ms' },
  { name: 'gang lifecycles a minute', values: perMinute, unit: '' },
];

const W = 560;
const H = 120;
const PAD = { left: 70, right: 20, top: 24, bottom: 22 };
const tMax = samples.at(-1)!.t;
const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1));

const parts = panels.map((p, i) => {
  const y0 = 30 + i * (H + 10);
  const max = Math.max(...p.values) * 1.1 || 1;
  const x = (t: number) => PAD.left + ((W - PAD.left - PAD.right) * t) / tMax;
  const y = (v: number) => y0 + PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / max);
  const points = samples.map((s, k) => `${x(s.t).toFixed(1)},${y(p.values[k]!).toFixed(1)}`).join(' ');
  return [
    `<text x="${PAD.left}" y="${y0 + 14}" font-size="12" font-weight="bold">${p.name}</text>`,
    `<line x1="${PAD.left}" y1="${y(0)}" x2="${W - PAD.right}" y2="${y(0)}" stroke="#999"/>`,
    `<line x1="${PAD.left}" y1="${y(max)}" x2="${PAD.left}" y2="${y(0)}" stroke="#999"/>`,
    `<text x="${PAD.left - 4}" y="${y(max) + 4}" font-size="10" text-anchor="end">${fmt(max)}${p.unit}</text>`,
    `<text x="${PAD.left - 4}" y="${y(0)}" font-size="10" text-anchor="end">0</text>`,
    `<text x="${W - PAD.right}" y="${y(0) + 14}" font-size="10" text-anchor="end">${Math.round(tMax / 60)} min</text>`,
    `<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="${points}"/>`,
  ].join('\n');
});

const height = 30 + panels.length * (H + 10);
writeFileSync(
  output,
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n<text x="10" y="18" font-size="14">${title}</text>\n${parts.join('\n')}\n</svg>\n`,
);
console.log(`${output}: ${samples.length} samples, ${panels.length} panels`);
