import { blocksFor } from './philox.js';

/**
 * Global random state: a 64-bit seed and a Philox block offset that advances with
 * each random op (as PyTorch's Philox generator does), so that a given sequence of
 * random ops draws the same numbers on every backend.
 */
const state = { seed: 0x5eed, offset: 0 };

/** Sets the seed and restarts the stream. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`manualSeed: seed must be a non-negative safe integer, got ${seed}`);
  state.seed = seed;
  state.offset = 0;
}

/** Current (seed, offset), e.g. to save with a checkpoint. */
export function getRngState(): { seed: number; offset: number } {
  return { ...state };
}

/**
 * Restores a state from `getRngState()` (e.g. read back from a checkpoint). Checks it
 * first: `seed` and `offset` must be non-negative safe integers; a NaN, fraction,
 * negative or too-large value throws a `RangeError` naming the field and changes nothing.
 */
export function setRngState(s: { seed: number; offset: number }): void {
  checkRngState(s, 'setRngState');
  state.seed = s.seed;
  state.offset = s.offset;
}

/**
 * Throws unless `s` is a valid RNG state (`{ seed, offset }`, both non-negative safe
 * integers), naming `where` and the bad field; a loader calls it before changing anything.
 */
export function checkRngState(s: unknown, where = 'checkRngState'): asserts s is { seed: number; offset: number } {
  if (typeof s !== 'object' || s === null) throw new TypeError(`${where}: an RNG state is an object { seed, offset }, got ${s === null ? 'null' : typeof s}`);
  for (const field of ['seed', 'offset'] as const) {
    const v = (s as Record<string, unknown>)[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`${where}: ${field} must be a non-negative safe integer, got ${typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v)}`);
    }
  }
}

/** @internal Reserves the blocks for `words` random words; returns (seed, offset) to draw them from. */
export function takeStream(words: number): { seed: number; offset: number } {
  const taken = { seed: state.seed, offset: state.offset };
  state.offset += blocksFor(words);
  return taken;
}
