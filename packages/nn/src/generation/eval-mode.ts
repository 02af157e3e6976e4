import type { Module } from '../module.js';

/** Per model: how many eval-mode sections are running and the mode the first one found. */
const sections = new WeakMap<Module, { count: number; wasTraining: boolean }>();

/**
 * Runs `fn` with `model` in eval mode and restores the mode it had before. Sections may
 * overlap (two `generate` calls awaiting readbacks at once): the model stays in eval mode
 * until the last one ends, and only then returns to the mode found by the first, so an
 * overlapping call neither runs in training mode nor leaves the model in eval mode.
 */
export async function withEvalMode<R>(model: Module, fn: () => Promise<R>): Promise<R> {
  let entry = sections.get(model);
  if (!entry) {
    entry = { count: 0, wasTraining: model.training };
    sections.set(model, entry);
  }
  entry.count++;
  model.eval();
  try {
    return await fn();
  } finally {
    if (--entry.count === 0) {
      sections.delete(model);
      model.train(entry.wasTraining);
    }
  }
}
