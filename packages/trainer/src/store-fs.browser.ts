/**
 * Local directories in browsers, selected by the `#checkpoint-fs` import condition:
 * there are none, so the directory store explains what to use instead.
 */
import type { CheckpointStore } from './store.js';

/** True where this runtime has local directories. */
export const FILE_SYSTEM_AVAILABLE = false;

/** Not available in browsers: throws, suggesting `memoryCheckpointStore()` or a store over OPFS. */
export function fileCheckpointStore(): CheckpointStore {
  throw new Error('fileCheckpointStore: local directories need Node; in a browser use memoryCheckpointStore() or opfsCheckpointStore()');
}
