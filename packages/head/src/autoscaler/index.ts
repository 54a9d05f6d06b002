export type { AutoscalingPolicy, AutoscalerState, Decision, DemandSample, LoadSample } from './types.js';
export { parsePolicy, policySchema, POLICY_DEFAULTS, type AutoscalingPolicyInput } from './policy.js';
export { floorAt, floorActive, nextFloorChange, type Floor } from './floors.js';
export { decide, type DecideInput } from './decide.js';
export { isCountMetric, metricProblem, metricValue, namedMetricOf, readsEngine, BUILT_IN_METRICS, type AutoscalingMetric, type BuiltInMetric } from './metrics.js';
