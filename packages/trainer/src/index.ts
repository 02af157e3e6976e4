/**
 * `@webpeft/trainer`: trainer checkpoints for resumable fine-tuning. A checkpoint holds
 * the trainable weights, the optimizer state keyed by parameter name, the scheduler and
 * RNG state, the step, epoch and data position; it is saved atomically and loaded only
 * after every part is checked, so a resumed run continues bit for bit.
 * @packageDocumentation
 */
export {
  type CheckpointOptimizer,
  type CheckpointScheduler,
  type LoadedCheckpoint,
  type TrainingObjects,
  type TrainingProgress,
  type WeightsInput,
  loadCheckpoint,
  readCheckpointManifest,
  saveCheckpoint,
  trainableWeights,
} from './checkpoint.js';
export { CHECKPOINT_FILES, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, type CheckpointManifest, type FileRecord, type JsonValue, crc32, parseManifest } from './format.js';
export { CheckpointError } from './errors.js';
export { type CheckpointStore, type MemoryCheckpointStore, memoryCheckpointStore } from './store.js';
export { fileCheckpointStore } from './store-fs.js';
export { opfsCheckpointStore } from './store-opfs.js';
