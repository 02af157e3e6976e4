import { type BackendName, type Tensor, cast, mul, rand, randn, sub, zeros } from '@webpeft/tensor';

/** Where and how new parameters are created. */
export interface ParamOptions {
  /** Backend for parameters (default: the current one; 'meta' builds shapes only). */
  backend?: BackendName;
  /**
   * Float dtype of new parameters (default f32). f16 parameters are drawn in f32 and
   * rounded, so an f16 model starts from the f32 model's values rounded to f16.
   */
  dtype?: 'f32' | 'f16';
  /**
   * Draw random initial values (default true). `false`: parameters start as zeros in
   * their final dtype, with no random draws and no transient tensors, for a loader that
   * overwrites every one of them (`fromPretrained`).
   */
  randomInit?: boolean;
  /**
   * Backend of the weights and biases `Linear` and `Conv1D` create (default `backend`).
   * `fromPretrained`'s quantize-on-load builds them on `'meta'` and replaces each layer
   * as its weight streams in, so no full-precision copy of them is ever allocated.
   */
  linearBackend?: BackendName;
}

/** Zeros in the parameter dtype when `opts.randomInit` is false (no draw), else null. */
function skippedInit(shape: readonly number[], opts: ParamOptions): Tensor | null {
  return opts.randomInit === false ? zeros(shape, { backend: opts.backend, dtype: opts.dtype ?? 'f32' }) : null;
}

/** `t` in the dtype `opts` asks for (consumes `t`). */
export function inParamDtype(t: Tensor, opts: ParamOptions): Tensor {
  if ((opts.dtype ?? 'f32') === t.dtype) return t;
  const out = cast(t, opts.dtype ?? 'f32');
  t.dispose();
  return out;
}

/** Uniform in [-bound, bound): `shape`. Draws from the global Philox stream. */
export function uniformInit(shape: readonly number[], bound: number, opts: ParamOptions = {}): Tensor {
  const skipped = skippedInit(shape, opts);
  if (skipped) return skipped;
  const u = rand(shape, { backend: opts.backend });
  if (opts.backend === 'meta') return inParamDtype(u, opts);
  const centered = sub(u, 0.5);
  u.dispose();
  const out = mul(centered, 2 * bound);
  centered.dispose();
  return inParamDtype(out, opts);
}

/** Normal with standard deviation `std`: `shape`. */
export function normalInit(shape: readonly number[], std: number, opts: ParamOptions = {}): Tensor {
  const skipped = skippedInit(shape, opts);
  if (skipped) return skipped;
  const z = randn(shape, { backend: opts.backend });
  if (opts.backend === 'meta' || std === 1) return inParamDtype(z, opts);
  const out = mul(z, std);
  z.dispose();
  return inParamDtype(out, opts);
}

/**
 * PyTorch's default `nn.Linear` init, `kaiming_uniform_(a=sqrt(5))`: U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
 * (gain sqrt(2/(1+5)) * sqrt(3/fanIn) = 1/sqrt(fanIn).)
 */
export function kaimingUniformInit(shape: readonly number[], fanIn: number, opts: ParamOptions = {}): Tensor {
  return uniformInit(shape, 1 / Math.sqrt(fanIn), opts);
}
