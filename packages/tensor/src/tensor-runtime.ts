import type { Tensor } from './tensor.js';

/**
 * What a `Tensor` needs from the runtime: lifetime accounting and backward. The engine
 * installs itself here when it loads, so `tensor.ts` does not import `engine.ts` (which
 * imports `tensor.ts` to create tensors): one direction only.
 */
export interface TensorRuntime {
  onTensorCreated(t: Tensor): void;
  onTensorDisposed(t: Tensor): void;
  backward(root: Tensor, gradient: Tensor | undefined, retainGraph: boolean): void;
}

let runtime: TensorRuntime | null = null;

/** Installs the runtime (called once by the engine module). */
export function installTensorRuntime(r: TensorRuntime): void {
  runtime = r;
}

/** The installed runtime. */
export function tensorRuntime(): TensorRuntime {
  if (!runtime) throw new Error('tensor runtime is not loaded; import tensors from @webpeft/tensor');
  return runtime;
}
