export { nodesTable, clusterSummary } from './format.js';
export { startGateway, DEFAULT_MAX_BODY_BYTES, type Gateway, type GatewayOptions } from './gateway.js';
