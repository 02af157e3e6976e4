/**
 * The directory store's public face. The implementation is chosen by the `#checkpoint-fs`
 * import condition (Node: `store-fs.node.ts`, browsers: `store-fs.browser.ts`); this file
 * re-exposes it under a plain signature so the published declarations never name the
 * `#` import, which type resolvers outside Node's own (node10) cannot follow.
 */
import { fileCheckpointStore as runtimeFileCheckpointStore } from '#checkpoint-fs';
import type { CheckpointStore } from './store.js';

/**
 * A store whose keys are directory paths (relative to the working directory or absolute).
 * Node only: in a browser it throws, pointing to `memoryCheckpointStore()` or
 * `opfsCheckpointStore()`.
 * @example await saveCheckpoint(fileCheckpointStore(), 'out/checkpoint-100', state);
 */
export function fileCheckpointStore(): CheckpointStore {
  return runtimeFileCheckpointStore();
}
