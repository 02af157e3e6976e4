/**
 * Checkpoint I/O: the safetensors format, raw-bytes <-> tensor conversion, model file
 * sources and targets, and Hugging Face (sharded) checkpoints.
 * @packageDocumentation
 */
export {
  type RawTensor,
  type SafetensorsContents,
  type SafetensorsEntry,
  type SafetensorsHeader,
  SafetensorsError,
  parseSafetensors,
  parseSafetensorsHeader,
  safetensorsHeaderLength,
  serializeSafetensors,
} from './safetensors.js';
export { type SafetensorsFile, openSafetensorsFile } from './safetensors-file.js';
export { type RandomAccessFile, blobFile, bytesFile } from './random-access.js';
export { WeightsMismatchError, type ExpectedTensor, weightProblems, dtypeKind } from './weights-mismatch.js';
export { type SafetensorsDType, SAFETENSORS_DTYPES, SAFETENSORS_ITEM_SIZE, isSafetensorsDType } from './dtypes.js';
export { type RawToTensorOptions, SAFETENSORS_DTYPE_OF, rawToTensor, tensorToRaw, rawFromArray } from './convert.js';
export { bf16BitsToF32, f32ToBf16Bits, f8e4m3BitsToF32, f8e5m2BitsToF32 } from './float-bits.js';
export {
  type ModelSource,
  type WritableTarget,
  type SourceInput,
  MissingFileError,
  openSource,
  openTarget,
  memoryTarget,
} from './source.js';
export { type Checkpoint, type CheckpointTensorInfo, type LoadCheckpointOptions, loadCheckpoint, openCheckpoint, saveSafetensors } from './checkpoint.js';
export { type RemoteOptions, OPTIONAL_MODEL_FILES, isHubRepoId, openHubSource, openUrlSource } from './remote-source.js';
export type { DownloadProgress } from './remote-store.js';
export { NetworkError, OfflineCacheError, RemoteFileError } from './remote-errors.js';
