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

/** Restores a state from `getRngState()`. */
export function setRngState(s: { seed: number; offset: number }): void {
  state.seed = s.seed;
  state.offset = s.offset;
}

/** @internal Reserves the blocks for `words` random words; returns (seed, offset) to draw them from. */
export function takeStream(words: number): { seed: number; offset: number } {
  const taken = { seed: state.seed, offset: state.offset };
  state.offset += blocksFor(words);
  return taken;
}
