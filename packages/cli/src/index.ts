export { nodesTable, clusterSummary } from './format.js';
export { startGateway, type Gateway } from './gateway.js';
