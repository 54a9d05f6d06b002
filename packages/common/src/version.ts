/** The version every Muster process reports (agents, head, SDK). */
export const VERSION = '0.1.0';
