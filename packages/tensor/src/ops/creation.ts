import type { BackendName } from '../backend.js';
import { type DType, type TensorData, allocHostArray } from '../dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../errors.js';
import { engine } from '../engine.js';
import { f32ArrayToF16Bits, f32ToF16Bits } from '../math.js';
import { takeStream } from '../random/rng.js';
import { assertValidShape, sizeOf } from '../shape.js';
import type { Tensor } from '../tensor.js';

/** Options shared by the creation ops. */
export interface CreationOptions {
  dtype?: DType;
  /** Backend to create on (default: the one chosen by `init`). */
  backend?: BackendName;
  requiresGrad?: boolean;
}

function finish(t: Tensor, opts: CreationOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad = true;
  return t;
}

/**
 * A tensor from host data (a typed array or a flat number array, row-major).
 * `shape` defaults to `[data.length]`. For `dtype: 'f16'` a `Uint16Array` holds f16
 * bits; any other data is rounded to f16 (nearest even).
 * @example tensor([1, 2, 3, 4], [2, 2])
 */
export function tensor(data: TensorData | readonly number[], shape?: readonly number[], opts: CreationOptions = {}): Tensor {
  const dtype = opts.dtype ?? inferDType(data);
  const s = shape ?? [data.length];
  assertValidShape('tensor', s);
  if (sizeOf(s) !== data.length) {
    throw new ShapeError(`tensor: ${data.length} values do not fill shape ${fmtShape(s)} (${sizeOf(s)} elements)`);
  }
  const backend = engine.getBackend(opts.backend);
  let host: TensorData;
  if (ArrayBuffer.isView(data) && arrayMatches(data, dtype)) host = data;
  else if (dtype === 'f16' && data instanceof Float32Array) host = f32ArrayToF16Bits(data);
  else {
    host = allocHostArray(dtype, data.length);
    // Values given for an f16 tensor are rounded to f16 bits (a Uint16Array is taken as bits).
    if (dtype === 'f16') for (let i = 0; i < data.length; i++) host[i] = f32ToF16Bits(Number(data[i]));
    else for (let i = 0; i < data.length; i++) host[i] = Number(data[i]);
  }
  const t = engine.makeTensor(backend, s, dtype, 'tensor');
  backend.write(t.liveStorage('tensor'), host);
  return finish(t, opts);
}

function inferDType(data: TensorData | readonly number[]): DType {
  if (data instanceof Float64Array) return 'f64';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Uint32Array) return 'u32';
  if (data instanceof Uint16Array) return 'f16';
  return 'f32';
}

function arrayMatches(data: TensorData, dtype: DType): boolean {
  switch (dtype) {
    case 'f32':
      return data instanceof Float32Array;
    case 'f64':
      return data instanceof Float64Array;
    case 'f16':
      return data instanceof Uint16Array;
    case 'i32':
      return data instanceof Int32Array;
    default:
      return data instanceof Uint32Array;
  }
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, opts: CreationOptions = {}): Tensor {
  assertValidShape('full', shape);
  const t = engine.runOp('Fill', [], { shape: [...shape], value, dtype: opts.dtype ?? 'f32' }, engine.getBackend(opts.backend));
  return finish(t, opts);
}

/** Zeros of `shape`. */
export function zeros(shape: readonly number[], opts: CreationOptions = {}): Tensor {
  return full(shape, 0, opts);
}

/** Ones of `shape`. */
export function ones(shape: readonly number[], opts: CreationOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/** A tensor like `t` (shape, dtype, backend) filled with `value`. */
export function fullLike(t: Tensor, value: number, opts: CreationOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, backend: t.backend.name, ...opts });
}

/** Zeros like `t`. */
export function zerosLike(t: Tensor): Tensor {
  return fullLike(t, 0);
}

/** Ones like `t`. */
export function onesLike(t: Tensor): Tensor {
  return fullLike(t, 1);
}

/** A scalar (shape `[]`) on the backend of `like` with its dtype. */
export function scalarLike(like: Tensor, value: number): Tensor {
  return engine.runOp('Fill', [], { shape: [], value, dtype: like.dtype }, like.backend);
}

/**
 * `[start, start + step, ...]` below `end` (exclusive), like `torch.arange`.
 * `arange(5)` is `[0..4]`. Shape `[ceil((end - start) / step)]`.
 */
export function arange(start: number, end?: number, step = 1, opts: CreationOptions = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  if (step === 0) throw new RangeError('arange: step must not be 0');
  const size = Math.max(0, Math.ceil((end - start) / step));
  return engine.runOp('Arange', [], { start, step, size, dtype: opts.dtype ?? 'f32' }, engine.getBackend(opts.backend));
}

function randomTensor(shape: readonly number[], normal: boolean, opts: CreationOptions): Tensor {
  const op = normal ? 'randn' : 'rand';
  assertValidShape(op, shape);
  if (opts.dtype && opts.dtype !== 'f32') throw new DTypeError(`${op}: only f32 is supported, got ${opts.dtype}`);
  const n = sizeOf(shape);
  const { seed, offset } = takeStream(normal ? 2 * n : n);
  const t = engine.runOp('Random', [], { shape: [...shape], seed, offset, normal }, engine.getBackend(opts.backend));
  return finish(t, opts);
}

/**
 * Uniform samples in [0, 1) from the global Philox stream: the same bits on every
 * backend and runtime for the same seed and op sequence.
 */
export function rand(shape: readonly number[], opts: CreationOptions = {}): Tensor {
  return randomTensor(shape, false, opts);
}

/** Standard normal samples (Box-Muller over the Philox stream); same bits everywhere. */
export function randn(shape: readonly number[], opts: CreationOptions = {}): Tensor {
  return randomTensor(shape, true, opts);
}
