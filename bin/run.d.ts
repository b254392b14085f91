/** Types of bin/run.js: the Node flags and environment of the local tools. */
export declare function localEnv(env?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
export declare function runNode(
  args: readonly string[],
  options?: import('node:child_process').SpawnSyncOptions,
): number;
