/**
 * A strict, bounded reader of the Prometheus text exposition format (and
 * OpenMetrics' superset of it: `# EOF`, exemplars after ` # `), for the few
 * series the engine scraper wants.
 *
 * Why not a library: the npm parsers of this format (parse-prometheus-text-
 * format, last released 2017) build an object of every family and sample
 * with no bound on either; an engine's `/metrics` can carry thousands of
 * histogram buckets we never look at. This reads line by line, checks every
 * sample line's shape (so a body that is not Prometheus text is refused, not
 * half-read), counts series against a bound, and aggregates only the wanted
 * names over their labels (vLLM labels its gauges by `model_name`; one engine
 * process may serve several): counts are summed, and the names in `maxOf`
 * (a fraction such as KV-cache use, where a sum of 0.6 and 0.7 means
 * nothing) take the largest series — the fullest cache is the one that
 * preempts first, which a mean would hide.
 *
 * Refused (an Error naming the line): a sample line without a valid metric
 * name, with unbalanced label braces or quotes, or whose value is not a
 * number; more than MAX_SERIES sample lines; a body over the byte bound
 * (checked by the caller while reading, see engine-scraper.ts).
 */

/** Sample lines one scrape may hold (vLLM with a few models: ~1,500). */
export const MAX_SERIES = 50_000;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/** Where the label set starting at `i` ("{") ends (the index after "}"); -1 when it does not. */
function labelsEnd(line: string, i: number): number {
  let quoted = false;
  for (let j = i + 1; j < line.length; j++) {
    const c = line[j];
    if (quoted) {
      if (c === '\\') j++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '}') return j + 1;
  }
  return -1;
}

/** The text format's float: Go's ParseFloat spellings, as Prometheus writes them. */
function value(token: string): number | undefined {
  if (token === 'NaN') return NaN;
  if (token === '+Inf' || token === 'Inf') return Infinity;
  if (token === '-Inf') return -Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(token)) return undefined;
  return Number(token);
}

/**
 * The sum over labels of each wanted metric found in `text` (the largest
 * series for a name in `maxOf`; a name absent from the body is absent from
 * the map). NaN samples are skipped (an engine writes NaN for "no value yet").
 */
export function sumSeries(text: string, wanted: ReadonlySet<string>, maxSeries = MAX_SERIES, maxOf: ReadonlySet<string> = new Set()): Map<string, number> {
  const out = new Map<string, number>();
  let series = 0;
  let lineNo = 0;
  for (const raw of text.split('\n')) {
    lineNo++;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (++series > maxSeries) throw new Error(`more than ${maxSeries} series`);
    const name = NAME.exec(line)?.[0];
    if (!name) throw new Error(`line ${lineNo}: no metric name: ${line.slice(0, 80)}`);
    let at = name.length;
    if (line[at] === '{') {
      at = labelsEnd(line, at);
      if (at < 0) throw new Error(`line ${lineNo}: unterminated label set: ${line.slice(0, 80)}`);
    }
    // value [timestamp] [# exemplar]
    const rest = line.slice(at).split(' # ')[0]!.trim().split(/\s+/);
    const v = rest[0] === undefined ? undefined : value(rest[0]);
    if (v === undefined || rest.length > 2) throw new Error(`line ${lineNo}: not "name{labels} value [timestamp]": ${line.slice(0, 80)}`);
    if (!wanted.has(name) || Number.isNaN(v)) continue;
    const prev = out.get(name);
    out.set(name, prev === undefined ? v : maxOf.has(name) ? Math.max(prev, v) : prev + v);
  }
  return out;
}
