/**
 * The in-place ops of the 8-bit and paged optimizers, declared in the tensor package's
 * registry by module augmentation. Each has a cpu kernel (`kernels-cpu.ts`, the host
 * loops) and a webgpu kernel (`adam-8bit-webgpu.ts`, `paged-webgpu.ts`).
 */
import type { BaseHyper, Scalars, UpdateRule } from '@webpeft/optim';
import type { Tensor } from '@webpeft/tensor';
import type { BnbAdamScalars } from './bnb-scalars.js';

/**
 * One parameter (or a range of its blocks) of an `Adam8bitStep`: blocks `blockBase ..
 * blockBase + blocks - 1` (256 elements each) of f32 `param`/`grad`, with their packed
 * 8-bit state at word `stateWord` of `state` (u32, layout of `adam-8bit-webgpu.ts` for
 * `blocks` blocks: `blocks * 130` words), updated in place.
 */
export interface Adam8bitItem {
  param: Tensor;
  grad: Tensor;
  state: Tensor;
  stateWord: number;
  blocks: number;
  blockBase: number;
  scalars: BnbAdamScalars;
}

/**
 * Arguments of `Adam8bitStep`: every item updated by one step (one dispatch on webgpu
 * per batch that fits a storage binding). `qmap` holds the signed then the unsigned
 * dynamic map (512 f32).
 */
export interface Adam8bitStepArgs {
  items: readonly Adam8bitItem[];
  qmap: Tensor;
}

/**
 * Arguments of `PagedUpdate`: elements `base .. base + count - 1` of `param`/`grad`
 * updated by `rule`, with their state in `slot` (f32, state `j` at `j * count`).
 */
export interface PagedUpdateArgs {
  rule: UpdateRule<BaseHyper>;
  hyper: BaseHyper;
  scalars: Scalars;
  param: Tensor;
  grad: Tensor;
  slot: Tensor;
  base: number;
  count: number;
}

declare module '@webpeft/tensor/kernel' {
  interface InPlaceOps {
    /** bitsandbytes' 8-bit blockwise Adam step over ranges of blocks of several parameters (see `adam-8bit-host.ts`). */
    Adam8bitStep: { args: Adam8bitStepArgs; result: void };
    /** An `@webpeft/optim` update rule over one page of a paged optimizer's state. */
    PagedUpdate: { args: PagedUpdateArgs; result: void };
  }
}
