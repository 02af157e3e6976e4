import { engine } from '../engine.js';
import type { Tensor } from '../tensor.js';

/**
 * Runs `fn` in a scope: every tensor created inside and not returned (or `keep`-ed) is
 * disposed when it ends. Returned tensors (also inside arrays/objects) move to the
 * enclosing scope. `fn` must be synchronous.
 * @example const loss = tidy(() => crossEntropy(model(x), y));
 */
export function tidy<T>(fn: () => T): T {
  engine.startScope();
  let result: T | undefined;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy: fn must be synchronous (it returned a Promise)');
    return result;
  } finally {
    engine.endScope(result);
  }
}

/** Exempts `t` from every `tidy` scope (it lives until `dispose()`). Returns `t`. */
export function keep<T extends Tensor>(t: T): T {
  engine.keep(t);
  return t;
}

/** Runs `fn` with gradient recording off (inference pays nothing for autograd). */
export function noGrad<T>(fn: () => T): T {
  const prev = engine.gradEnabled;
  engine.gradEnabled = false;
  try {
    return fn();
  } finally {
    engine.gradEnabled = prev;
  }
}

/** Whether ops are currently recorded for autograd. */
export function isGradEnabled(): boolean {
  return engine.gradEnabled;
}

/** Runs `fn` with `enabled` grad mode (restored afterwards). */
export function withGradEnabled<T>(enabled: boolean, fn: () => T): T {
  const prev = engine.gradEnabled;
  engine.gradEnabled = enabled;
  try {
    return fn();
  } finally {
    engine.gradEnabled = prev;
  }
}

/** A tensor sharing `t`'s storage, cut from the graph (no gradient flows through it). */
export function detach(t: Tensor): Tensor {
  return engine.shareStorage(t, t.shape, 'detach');
}

/** Runs `fn` with new tensors tagged `tag` in the memory report. */
export function withMemoryTag<T>(tag: import('../backend.js').MemoryTag, fn: () => T): T {
  const prev = engine.currentTag;
  engine.currentTag = tag;
  try {
    return fn();
  } finally {
    engine.currentTag = prev;
  }
}
