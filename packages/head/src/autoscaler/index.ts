export type { AutoscalingPolicy, AutoscalerState, Decision, DemandSample, LoadSample, MetricTarget, MetricTimers } from './types.js';
export { parsePolicy, policySchema, POLICY_DEFAULTS, MAX_POLICY_METRICS, type AutoscalingPolicyInput } from './policy.js';
export { floorAt, floorActive, nextFloorChange, type Floor } from './floors.js';
export { decide, type DecideInput } from './decide.js';
export { customMetricOf, isCountMetric, mayBeAbsent, maxTargetOf, metricProblem, metricValue, namedMetricOf, readsEngine, BUILT_IN_METRICS, type AutoscalingMetric, type BuiltInMetric } from './metrics.js';
