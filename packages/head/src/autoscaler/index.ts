export type { AutoscalingMetric, AutoscalingPolicy, AutoscalerState, Decision, DemandSample, LoadSample } from './types.js';
export { namedMetricOf, parsePolicy, policySchema, POLICY_DEFAULTS, type AutoscalingPolicyInput } from './policy.js';
export { floorAt, floorActive, nextFloorChange, type Floor } from './floors.js';
export { decide, type DecideInput } from './decide.js';
