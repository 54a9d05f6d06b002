/**
 * The one set of latency histogram buckets, shared by every request
 * histogram (the data plane's router and replica, the gateway), so their
 * series line up on one dashboard. Here in the main entry, not in
 * `./metrics`, because the data plane (and so the SDK) must load no
 * exporter (test/integration/sdk-imports.test.ts).
 */

/** Latency buckets in seconds: 1 ms to 2 min, the span of a no-op call to a long generation. */
export const LATENCY_BUCKETS_S: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
