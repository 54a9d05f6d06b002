export { nodesTable, clusterSummary } from './format.js';
