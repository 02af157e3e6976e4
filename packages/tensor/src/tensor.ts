import type { Backend, MemoryTag, Storage } from './backend.js';
import { type DType, type TensorData, viewHostArray } from './dtype.js';
import { DisposedTensorError, fmtShape } from './errors.js';
import { sizeOf } from './shape.js';
import type { GradNode } from './autograd/grad-node.js';
import { tensorRuntime } from './tensor-runtime.js';

let nextId = 1;

/**
 * An n-dimensional array on a backend. Storage is contiguous and row-major; a tensor
 * owns (a reference to) its storage until `dispose()`.
 *
 * Reads are async only (`await t.data()`); everything else is eager on the host and
 * lazy on the device (work is queued and submitted at a read or `flush()`).
 */
export class Tensor {
  /** Unique id, for debugging and leak reports. */
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
  /** Gradient accumulated by `backward()` (leaves only). */
  grad: Tensor | null = null;
  /** @internal Storage, or null once disposed. */
  storage: Storage | null;
  /** @internal Graph node that produced this tensor, when recorded. */
  node: GradNode | null = null;
  /** @internal Set by `keep()`: `tidy` scopes never dispose this tensor. */
  kept = false;
  /** @internal Who is updating this tensor in place right now (see `markBusy`), else null. */
  busyWith: string | null = null;
  private _requiresGrad = false;

  /** @internal Use the creation ops (`tensor`, `zeros`, `randn`...) instead. */
  constructor(storage: Storage, shape: readonly number[], dtype: DType) {
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.size = sizeOf(shape);
    tensorRuntime().onTensorCreated(this);
  }

  /** The backend that holds this tensor. */
  get backend(): Backend {
    return this.liveStorage('backend').backend;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** True once `dispose()` ran. */
  get isDisposed(): boolean {
    return this.storage === null;
  }

  /** Whether gradients flow to this tensor. Settable on leaves (tensors not produced by a recorded op). */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  set requiresGrad(value: boolean) {
    if (this.node && !value) {
      throw new Error(`requiresGrad: tensor ${fmtShape(this.shape)} is the output of a recorded op; use detach()`);
    }
    this._requiresGrad = value;
  }

  /** @internal Storage of a live tensor, or a DisposedTensorError naming `op`. */
  liveStorage(op: string): Storage {
    if (this.storage === null) {
      throw new DisposedTensorError(`${op}: tensor #${this.id} ${fmtShape(this.shape)} ${this.dtype} was disposed`);
    }
    return this.storage;
  }

  /** Memory tag of this tensor's storage. */
  get memoryTag(): MemoryTag {
    return this.liveStorage('memoryTag').tag;
  }

  /** Moves this tensor's bytes to `tag` in the memory report. Returns `this`. */
  setMemoryTag(tag: MemoryTag): this {
    const s = this.liveStorage('setMemoryTag');
    if (s.tag !== tag) s.backend.retag(s, tag);
    return this;
  }

  /**
   * Copies the elements to the host, in row-major order. Submits pending device work.
   * f16 comes back as raw `Uint16Array` bits, bool as `Uint32Array` of 0/1.
   */
  async data(): Promise<TensorData> {
    const s = this.liveStorage('data');
    const byteLength = this.size * bytesOf(this.dtype);
    const buf = await s.backend.read(s, byteLength);
    return viewHostArray(this.dtype, buf, this.size);
  }

  /** The elements as a plain number array (row-major). */
  async toArray(): Promise<number[]> {
    return Array.from(await this.data());
  }

  /** The single element of a size-1 tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item: tensor has ${this.size} elements (shape ${fmtShape(this.shape)}), expected 1`);
    return (await this.data())[0];
  }

  /** Releases this tensor's storage (shared storage is freed with its last user). Idempotent. */
  dispose(): void {
    if (this.storage === null) return;
    tensorRuntime().onTensorDisposed(this);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * Backpropagates from this tensor, accumulating into the `.grad` of leaves that
   * require grad. A non-scalar tensor needs an explicit `gradient` of its shape.
   */
  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): void {
    tensorRuntime().backward(this, gradient, options.retainGraph ?? false);
  }

  toString(): string {
    return `Tensor#${this.id}(${fmtShape(this.shape)}, ${this.dtype}${this.isDisposed ? ', disposed' : ''})`;
  }
}

function bytesOf(dtype: DType): number {
  return dtype === 'f64' ? 8 : dtype === 'f16' ? 2 : 4;
}
