/** Runs `fn` `runs` times one after another, prints each time as "what: a · b · … ms", and returns the median in ms (the upper one of an even count). */
export async function timeRuns(what: string, runs: number, fn: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  console.log(`${what}: ${ms.map((m) => m.toFixed(0)).join(' · ')} ms`);
  return [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
}
