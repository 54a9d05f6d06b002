import { describe, expect, it } from 'vitest';
import { sumSeries } from './prometheus-text.js';

/** What vLLM's /metrics looks like (trimmed), two models on one engine. */
const VLLM = `# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="a"} 3.0
vllm:num_requests_waiting{engine="0",model_name="b \\"quoted\\" }"} 4.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 8.0 1712345678000
vllm:gpu_cache_usage_perc{model_name="a"} 0.25
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="a"} 12 # {trace_id="abc"} 0.1 1.7e9
vllm:nan_gauge NaN
vllm:inf_gauge +Inf
# EOF
`;

describe('sumSeries', () => {
  const wanted = new Set(['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:gpu_cache_usage_perc', 'vllm:nan_gauge', 'vllm:absent']);

  it('sums the wanted metrics over their labels; skips the rest, NaN and comments', () => {
    const m = sumSeries(VLLM, wanted);
    expect(Object.fromEntries(m)).toEqual({ 'vllm:num_requests_waiting': 7, 'vllm:num_requests_running': 8, 'vllm:gpu_cache_usage_perc': 0.25 });
  });

  it('takes the largest series of a fraction named in maxOf, not their sum (two models, KV-cache 0.6 and 0.7)', () => {
    const body = 'kv{model_name="a"} 0.6\nkv{model_name="b"} 0.7\nw{model_name="a"} 1\nw{model_name="b"} 2\n';
    expect(Object.fromEntries(sumSeries(body, new Set(['kv', 'w']), 100, new Set(['kv'])))).toEqual({ kv: 0.7, w: 3 });
  });

  it('reads CRLF bodies and exponent values', () => {
    expect(sumSeries('x 1e2\r\nx{a="1"} -5\r\n', new Set(['x'])).get('x')).toBe(95);
  });

  it.each([
    ['an HTML page', '<html><body>Not Found</body></html>', /line 1: no metric name/],
    ['an unterminated label set', 'x{a="1" 3', /line 1: unterminated label set/],
    ['a value that is not a number', 'x{a="1"} three', /line 1: not "name\{labels\} value/],
    ['trailing garbage', 'x 1 2 3', /not "name\{labels\} value/],
    ['a JSON body', '{"waiting": 3}', /no metric name/],
  ])('refuses %s', (_name, body, why) => {
    expect(() => sumSeries(body, new Set(['x']))).toThrow(why);
  });

  it('refuses more series than its bound', () => {
    const body = Array.from({ length: 11 }, (_, i) => `m_${i} 1`).join('\n');
    expect(() => sumSeries(body, new Set(['m_0']), 10)).toThrow(/more than 10 series/);
    expect(sumSeries(body, new Set(['m_0']), 11).get('m_0')).toBe(1);
  });
});
