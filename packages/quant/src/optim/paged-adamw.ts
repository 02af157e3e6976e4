/**
 * PagedAdamW (bitsandbytes `PagedAdamW` / `PagedAdamW32bit`): `@webpeft/optim`'s AdamW
 * with the states of parameters of >= 1e5 elements kept in host memory and streamed
 * through a device budget each step (see `page-stream.ts`), updated page by page by the
 * in-place op `PagedUpdate`: the same rule as AdamW's fused kernel, so results are
 * bit-identical to AdamW on the same backend. Where the backend's memory is the host's
 * (`capabilities.deviceMemory` false: cpu) there is nothing to page (as in
 * bitsandbytes): it is AdamW.
 */
import { AdamW, type AdamHyper, type AdamOptions, type ParamsInput, type SavedParamState, adamwRule } from '@webpeft/optim';
import type { Tensor } from '@webpeft/tensor';
import { runInPlace } from '@webpeft/tensor/kernel';
import { registerQuantOptimOps } from './register.js';
import { type Page, type PagedOptions, type PagedStats, pagePlan, streamPages } from './page-stream.js';
import { type LargeEntry, splitStep } from './split-step.js';

/** Parameters with at least this many elements get paged state (bitsandbytes' threshold). */
export const PAGED_MIN_ELEMENTS = 100_000;

/** Host state of one paged parameter. */
interface HostState {
  step: number;
  buffers: Record<string, Float32Array>;
}

/** Options of {@link PagedAdamW}. */
export type PagedAdamWOptions = AdamOptions & PagedOptions;

/**
 * AdamW whose large-parameter states live in host pages, streamed through at most
 * `deviceBudgetBytes` of device memory per step.
 * @example
 * const opt = new PagedAdamW(params, { lr: 2e-4, deviceBudgetBytes: 64 << 20 });
 */
export class PagedAdamW extends AdamW {
  /** Host states of paged (device memory, >= 1e5 elements) parameters. */
  readonly hostState = new Map<Tensor, HostState>();
  /** Statistics of the last step's streaming. */
  lastPagedStats: PagedStats | null = null;
  private readonly plan: { slots: number; slotBytes: number };

  constructor(params: ParamsInput<AdamHyper>, options: PagedAdamWOptions) {
    const { deviceBudgetBytes, pageBytes, ...rest } = options;
    super(params, rest, 'PagedAdamW');
    this.plan = pagePlan({ deviceBudgetBytes, pageBytes }, 'PagedAdamW');
  }

  private isPaged(p: Tensor): boolean {
    return p.backend.capabilities.deviceMemory && p.size >= PAGED_MIN_ELEMENTS;
  }

  protected override async runStep() {
    return splitStep(this, this.optimizerName, () => super.runStep(), (p) => this.isPaged(p), (e, h) => this.stepPaged(e, h));
  }

  private async stepPaged(entries: LargeEntry[], hypers: AdamHyper[]): Promise<void> {
    registerQuantOptimOps();
    const backend = entries[0].param.backend;
    const pages: Page[] = [];
    for (const e of entries) {
      const h = hypers[e.group];
      const names = adamwRule.stateNames(h);
      let st = this.hostState.get(e.param);
      if (!st) {
        st = { step: 0, buffers: Object.fromEntries(names.map((n) => [n, new Float32Array(e.param.size)])) };
        this.hostState.set(e.param, st);
      }
      const missing = names.find((n) => !st.buffers[n]);
      if (missing) throw new Error(`PagedAdamW: state of ${e.name} has no '${missing}' buffer; hyperparameters changed after its first step`);
      st.step++;
      const k = adamwRule.scalars(h, st.step);
      const perPage = Math.floor(this.plan.slotBytes / (4 * names.length));
      if (perPage < 1) throw new RangeError(`PagedAdamW: pageBytes ${this.plan.slotBytes} holds no element of ${names.length} f32 states`);
      const bufs = names.map((n) => st.buffers[n]);
      for (let e0 = 0; e0 < e.param.size; e0 += perPage) {
        const cnt = Math.min(perPage, e.param.size - e0);
        pages.push({
          bytes: cnt * 4 * names.length,
          upload() {
            const out = new Float32Array(cnt * names.length);
            bufs.forEach((b, j) => out.set(b.subarray(e0, e0 + cnt), j * cnt));
            return out;
          },
          run(slot) {
            runInPlace('PagedUpdate', { rule: adamwRule, hyper: h, scalars: k, param: e.param, grad: e.grad, slot, base: e0, count: cnt }, backend);
          },
          download(data) {
            const f = data as Float32Array;
            bufs.forEach((b, j) => b.set(f.subarray(j * cnt, (j + 1) * cnt), e0));
          },
        });
      }
    }
    this.lastPagedStats = await streamPages(backend, pages, this.plan.slots, this.plan.slotBytes, 'f32');
  }

  /** Paged parameters' host states, in AdamW's format (so AdamW and PagedAdamW load each other's state dicts). */
  protected override async saveParamState(param: Tensor): Promise<SavedParamState | null> {
    const st = this.hostState.get(param);
    if (!st) return super.saveParamState(param);
    return {
      step: st.step,
      buffers: Object.fromEntries(Object.entries(st.buffers).map(([n, b]) => [n, { shape: [...param.shape], dtype: 'f32' as const, data: b.slice() }])),
    };
  }

  /** Paged parameters' states go back to host pages; the others to device tensors as AdamW's. */
  protected override restoreParamState(param: Tensor, saved: SavedParamState): void {
    if (!this.isPaged(param)) {
      super.restoreParamState(param, saved);
      return;
    }
    this.hostState.set(param, { step: saved.step, buffers: Object.fromEntries(Object.entries(saved.buffers).map(([n, b]) => [n, Float32Array.from(b.data)])) });
  }

  override disposeState(): void {
    super.disposeState();
    this.hostState.clear();
  }
}

/** bitsandbytes' name for the 32-bit paged AdamW. */
export const PagedAdamW32bit = PagedAdamW;
