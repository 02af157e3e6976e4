/**
 * 8-bit blockwise Adam/AdamW (bitsandbytes `Adam8bit`/`AdamW8bit`, Dettmers et al. 2022,
 * "8-bit Optimizers via Block-wise Quantization", arXiv:2110.02861) and the paged
 * `PagedAdamW8bit`. States of parameters with >= `min8bitSize` (4096) elements are
 * stored as 8-bit codes per block of 256 (signed dynamic map for the first moment,
 * unsigned for the second) plus one float32 absmax per block and state: about 2 bytes
 * per element instead of AdamW's 8. Smaller parameters keep fp32 states and
 * bitsandbytes' 32-bit Adam update.
 */
import { type AdamHyper, type BufferLayout, Optimizer, type OptimizerOptions, type ParamsInput, type SavedParamState, splitOptions, validateAdamHyper } from '@webpeft/optim';
import { type Backend, DTypeError, type Tensor, keep, tensor, withMemoryTag, zeros } from '@webpeft/tensor';
import { runInPlace } from '@webpeft/tensor/kernel';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED } from '../code-tensors.js';
import { OPTIM_BLOCK, WORDS_PER_BLOCK } from './adam-8bit-host.js';
import { bnbAdamRule } from './bnb-adam-rule.js';
import type { Adam8bitItem } from './optim-ops.js';
import { bnbAdamScalars } from './bnb-scalars.js';
import { type Page, type PagedOptions, type PagedStats, pagePlan, streamPages } from './page-stream.js';
import { PAGED_MIN_ELEMENTS } from './paged-adamw.js';
import { registerQuantOptimOps } from './register.js';
import { type LargeEntry, splitStep } from './split-step.js';

/** Options of the 8-bit optimizers. */
export type Adam8bitOptions = Partial<AdamHyper> &
  OptimizerOptions & {
    /** Parameters with fewer elements keep fp32 states (default 4096, as bitsandbytes). */
    min8bitSize?: number;
  };

/** Quantized state of one parameter: packed words on the device (or cpu), or in host pages. */
interface QuantState {
  step: number;
  blocks: number;
  /** u32 `[blocks * 130]`, tagged 'optimizer' (unpaged). */
  words: Tensor | null;
  /** The same layout in host memory (paged). */
  host: Uint32Array | null;
}

const qmaps = new WeakMap<object, Tensor>();

/** The signed then the unsigned dynamic map as one tensor (512 f32), shared per backend. */
function qmapTensor(backend: Backend): Tensor {
  let t = qmaps.get(backend);
  if (!t || t.isDisposed) {
    const data = new Float32Array(512);
    data.set(DYNAMIC_SIGNED, 0);
    data.set(DYNAMIC_UNSIGNED, 256);
    t = keep(withMemoryTag('quant', () => tensor(data, [512], { backend: backend.name })));
    qmaps.set(backend, t);
  }
  return t;
}

function validate8bit(name: string, h: AdamHyper, where: string): void {
  validateAdamHyper(name, h, where);
  if (h.amsgrad) throw new Error(`${name} ${where}: amsgrad is not supported by the 8-bit optimizers`);
  if (h.maximize) throw new Error(`${name} ${where}: maximize is not supported by the 8-bit optimizers`);
}

/** The saved buffer of an 8-bit state: the packed words (codes then absmax) of all blocks. */
const STATE_8BIT = 'state8bit';

/** Shared implementation of {@link AdamW8bit}, {@link Adam8bit} and {@link PagedAdamW8bit}. */
abstract class Blockwise8bitAdam extends Optimizer<AdamHyper> {
  /** Quantized states of parameters with >= `min8bitSize` elements. */
  readonly quantState = new Map<Tensor, QuantState>();
  /** Parameters with fewer elements keep fp32 states. */
  readonly min8bitSize: number;
  /** Statistics of the last step's streaming (paged optimizers on a backend with device memory). */
  lastPagedStats: PagedStats | null = null;
  private readonly plan: { slots: number; slotBytes: number } | null;

  protected constructor(
    optName: string,
    params: ParamsInput<AdamHyper>,
    defaults: AdamHyper,
    options: OptimizerOptions,
    min8bitSize: number | undefined,
    paged: PagedOptions | null,
    displayName: string = optName,
  ) {
    super(bnbAdamRule(optName), params, defaults, options, displayName);
    if (min8bitSize !== undefined && (!Number.isInteger(min8bitSize) || min8bitSize < 1)) {
      throw new RangeError(`${displayName}: min8bitSize must be a positive integer, got ${min8bitSize}`);
    }
    this.min8bitSize = min8bitSize ?? 4096;
    this.plan = paged ? pagePlan(paged, displayName) : null;
  }

  protected validate(h: AdamHyper, where: string): void {
    validate8bit(this.optimizerName, h, where);
  }

  private isPaged(p: Tensor): boolean {
    return this.plan !== null && p.backend.capabilities.deviceMemory && p.size >= PAGED_MIN_ELEMENTS;
  }

  protected override async runStep() {
    return splitStep(this, this.optimizerName, () => super.runStep(), (p) => this.is8bit(p), (e, h) => this.step8bit(e, h));
  }

  private is8bit(p: Tensor): boolean {
    return p.size >= this.min8bitSize;
  }

  private stateFor(e: LargeEntry): QuantState {
    let st = this.quantState.get(e.param);
    if (!st) {
      if (e.param.dtype !== 'f32') throw new DTypeError(`${this.optimizerName}: parameter ${e.name} is ${e.param.dtype}; 8-bit states need f32 parameters`);
      const blocks = Math.ceil(e.param.size / OPTIM_BLOCK);
      const n = blocks * WORDS_PER_BLOCK;
      st = this.isPaged(e.param)
        ? { step: 0, blocks, words: null, host: new Uint32Array(n) }
        : { step: 0, blocks, words: keep(withMemoryTag('optimizer', () => zeros([n], { dtype: 'u32', backend: e.param.backend.name }))), host: null };
      this.quantState.set(e.param, st);
    }
    return st;
  }

  private async step8bit(entries: LargeEntry[], hypers: AdamHyper[]): Promise<void> {
    registerQuantOptimOps();
    // Unpaged items per backend (one `Adam8bitStep`, one dispatch, for all of them).
    const direct = new Map<Backend, Adam8bitItem[]>();
    // Paged parameters' block ranges, packed into pages that may hold several parameters.
    const pages: Page[] = [];
    let pagedBackend: Backend | null = null;
    const perPage = this.plan ? Math.floor(this.plan.slotBytes / (WORDS_PER_BLOCK * 4)) : 0;
    let open: { pieces: { host: Uint32Array; nb: number; b0: number; cnt: number; item: Omit<Adam8bitItem, 'state' | 'stateWord'> }[]; blocks: number } | null = null;
    const closePage = () => {
      if (!open || open.pieces.length === 0) return;
      const { pieces, blocks } = open;
      const backend = pagedBackend!;
      const qmap = qmapTensor(backend);
      const offsets: number[] = [];
      let w = 0;
      for (const pc of pieces) {
        offsets.push(w);
        w += pc.cnt * WORDS_PER_BLOCK;
      }
      // A piece's words in its own layout for cnt blocks: regions [host offset, length, page offset].
      const regions = (pc: (typeof pieces)[number], o: number) =>
        [
          [pc.b0 * 64, pc.cnt * 64, o],
          [pc.nb * 64 + pc.b0 * 64, pc.cnt * 64, o + pc.cnt * 64],
          [pc.nb * 128 + pc.b0, pc.cnt, o + pc.cnt * 128],
          [pc.nb * 129 + pc.b0, pc.cnt, o + pc.cnt * 129],
        ] as const;
      pages.push({
        bytes: blocks * WORDS_PER_BLOCK * 4,
        upload() {
          const out = new Uint32Array(blocks * WORDS_PER_BLOCK);
          pieces.forEach((pc, j) => {
            for (const [src, len, dst] of regions(pc, offsets[j])) out.set(pc.host.subarray(src, src + len), dst);
          });
          return out;
        },
        run(slot) {
          runInPlace('Adam8bitStep', { items: pieces.map((pc, j) => ({ ...pc.item, state: slot, stateWord: offsets[j] })), qmap }, backend);
        },
        download(data) {
          const words = data as Uint32Array;
          pieces.forEach((pc, j) => {
            for (const [src, len, dst] of regions(pc, offsets[j])) pc.host.set(words.subarray(dst, dst + len), src);
          });
        },
      });
      open = null;
    };
    for (const e of entries) {
      const st = this.stateFor(e);
      st.step++;
      const scalars = bnbAdamScalars(hypers[e.group], st.step);
      const backend = e.param.backend;
      if (st.words) {
        let list = direct.get(backend);
        if (!list) direct.set(backend, (list = []));
        list.push({ param: e.param, grad: e.grad, state: st.words, stateWord: 0, blocks: st.blocks, blockBase: 0, scalars });
        continue;
      }
      if (perPage < 1) throw new RangeError(`${this.optimizerName}: pageBytes ${this.plan!.slotBytes} holds no block (${WORDS_PER_BLOCK * 4} bytes)`);
      pagedBackend = backend;
      for (let b0 = 0; b0 < st.blocks; ) {
        if (!open || open.blocks >= perPage) {
          closePage();
          open = { pieces: [], blocks: 0 };
        }
        const cnt = Math.min(perPage - open.blocks, st.blocks - b0);
        open.pieces.push({ host: st.host!, nb: st.blocks, b0, cnt, item: { param: e.param, grad: e.grad, blocks: cnt, blockBase: b0, scalars } });
        open.blocks += cnt;
        b0 += cnt;
      }
    }
    closePage();
    for (const [backend, items] of direct) runInPlace('Adam8bitStep', { items, qmap: qmapTensor(backend) }, backend);
    if (pagedBackend && pages.length > 0) this.lastPagedStats = await streamPages(pagedBackend, pages, this.plan!.slots, this.plan!.slotBytes, 'u32');
  }

  /** 8-bit parameters: one u32 buffer `state8bit` `[blocks * 130]` (codes of both moments, then their absmax). */
  protected override stateLayout(param: Tensor, h: AdamHyper): Record<string, BufferLayout> {
    if (!this.is8bit(param)) return super.stateLayout(param, h);
    if (param.dtype !== 'f32') throw new DTypeError(`${this.optimizerName}.loadStateDict: parameter is ${param.dtype}; 8-bit states need f32 parameters`);
    return { [STATE_8BIT]: { shape: [Math.ceil(param.size / OPTIM_BLOCK) * WORDS_PER_BLOCK], dtype: 'u32' } };
  }

  /** The packed words of an 8-bit state (read back from the device, or copied from host pages). */
  protected override async saveParamState(param: Tensor): Promise<SavedParamState | null> {
    const st = this.quantState.get(param);
    if (!st) return super.saveParamState(param);
    const data = st.words ? ((await st.words.data()) as Uint32Array) : st.host!.slice();
    return { step: st.step, buffers: { [STATE_8BIT]: { shape: [data.length], dtype: 'u32', data } } };
  }

  /** Puts saved words back where this optimizer keeps them: device words, or host pages when paged. */
  protected override restoreParamState(param: Tensor, saved: SavedParamState): void {
    if (!this.is8bit(param)) {
      super.restoreParamState(param, saved);
      return;
    }
    const words = Uint32Array.from(saved.buffers[STATE_8BIT].data);
    const blocks = words.length / WORDS_PER_BLOCK;
    this.quantState.set(
      param,
      this.isPaged(param)
        ? { step: saved.step, blocks, words: null, host: words }
        : { step: saved.step, blocks, words: keep(withMemoryTag('optimizer', () => tensor(words, [words.length], { dtype: 'u32', backend: param.backend.name }))), host: null },
    );
  }

  override disposeState(): void {
    super.disposeState();
    for (const st of this.quantState.values()) st.words?.dispose();
    this.quantState.clear();
  }
}

/**
 * bitsandbytes `AdamW8bit`: 8-bit blockwise states, decoupled weight decay applied after
 * the update. Defaults: lr 1e-3, betas [0.9, 0.999], eps 1e-8, weightDecay 1e-2.
 * @example const opt = new AdamW8bit(params, { lr: 2e-4 }); await opt.step();
 */
export class AdamW8bit extends Blockwise8bitAdam {
  constructor(params: ParamsInput<AdamHyper>, options: Adam8bitOptions = {}) {
    const [{ min8bitSize, ...hyper }, opts] = splitOptions(options);
    super('AdamW8bit', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false, ...hyper }, opts, min8bitSize, null);
  }
}

/** bitsandbytes `Adam8bit`: {@link AdamW8bit} with weightDecay 0 by default (the same kernel). */
export class Adam8bit extends Blockwise8bitAdam {
  constructor(params: ParamsInput<AdamHyper>, options: Adam8bitOptions = {}) {
    const [{ min8bitSize, ...hyper }, opts] = splitOptions(options);
    super('Adam8bit', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false, ...hyper }, opts, min8bitSize, null);
  }
}

/**
 * bitsandbytes `PagedAdamW8bit`: {@link AdamW8bit} whose 8-bit states of parameters with
 * >= 1e5 elements live in host pages and stream through `deviceBudgetBytes` of device
 * memory each step; bit-identical to AdamW8bit on the same backend.
 */
export class PagedAdamW8bit extends Blockwise8bitAdam {
  constructor(params: ParamsInput<AdamHyper>, options: Adam8bitOptions & PagedOptions) {
    const [{ min8bitSize, deviceBudgetBytes, pageBytes, ...hyper }, opts] = splitOptions(options);
    super(
      'AdamW8bit',
      params,
      { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false, ...hyper },
      opts,
      min8bitSize,
      { deviceBudgetBytes, pageBytes },
      'PagedAdamW8bit',
    );
  }
}
