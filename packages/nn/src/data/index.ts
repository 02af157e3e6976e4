/**
 * Supervised fine-tuning data, as TRL's `SFTTrainer` prepares it: parse a data file,
 * tokenize with loss masks, pack, and collate into padded batches.
 * @packageDocumentation
 */
export { SftDataError, parseSftData, type ParseSftOptions, type SftDataset, type SftFormat, type SftRecord } from './sft-records.js';
export { IGNORE_INDEX, tokenizeSft, type SftExample, type TokenizeSftOptions, type TokenizedSft } from './sft-tokenize.js';
export { packSft, type PackedExample, type PackingStrategy } from './packing.js';
export { collatePacked, collateSft, type CollateOptions, type SftBatch } from './collate.js';
