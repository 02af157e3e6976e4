/**
 * Turns what the library throws into the few kinds of failure the page explains
 * (no WebGPU, out of device memory with memory by tag, unsupported model type,
 * malformed file, invalid setting), keeping the library's own message.
 */
import { SafetensorsError, SftDataError } from '@webpeft/nn';
import { NoAdapterError, OutOfMemoryError } from '@webpeft/tensor';
import { MalformedFileError } from './data.js';
import type { StudioErrorInfo, StudioErrorKind } from './protocol.js';

/** A failure the studio raises itself, with its kind. */
export class StudioError extends Error {
  override name = 'StudioError';
  constructor(
    readonly kind: StudioErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** The kind and message of any thrown value, for the page. */
export function describeError(e: unknown): StudioErrorInfo {
  if (e instanceof StudioError) return { kind: e.kind, message: e.message };
  if (e instanceof OutOfMemoryError) return { kind: 'out-of-memory', message: e.message, memoryByTag: { ...e.memory.bytesByTag } };
  if (e instanceof NoAdapterError) return { kind: 'no-webgpu', message: e.message };
  if (e instanceof MalformedFileError || e instanceof SftDataError || e instanceof SafetensorsError || e instanceof SyntaxError) return { kind: 'malformed-file', message: e.message };
  const message = e instanceof Error ? e.message : String(e);
  if (/navigator\.gpu is undefined/.test(message)) return { kind: 'no-webgpu', message };
  if (/model_type .* is not supported/.test(message)) return { kind: 'unsupported-model', message };
  if (e instanceof RangeError) return { kind: 'invalid-setting', message };
  return { kind: 'error', message };
}
