/**
 * Bench row: one AdamW step over 20 parameters totalling 20M elements on WebGPU,
 * `PagedAdamW` (states in host pages streamed through a device budget of 25% of the
 * 160 MB of state, upload of page k+1 overlapping the read-back of page k) against the
 * unpaged fused `AdamW` (all states resident on the device). Same updates bit for bit;
 * the row measures what paging costs in time.
 */
import { AdamW } from '@webpeft/optim';
import { PagedAdamW } from '@webpeft/quant';
import { ensureWebGpu, makeParams, timeSteps } from './optimizer-setup.ts';

const PARAMS = 20;
const ELEMENTS_PER_PARAM = 1_000_000;
const STATE_BYTES = PARAMS * ELEMENTS_PER_PARAM * 8;
const BUDGET = STATE_BYTES / 4;
const WARMUP = 1;
const TIMED = 3;
const HYPER = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0.01, skipNonFinite: false };


/** Paged vs unpaged AdamW step, 20 params / 20M elements, budget 25% of state bytes. */
export async function benchPagedVsUnpagedAdamW(): Promise<{ name: string; ours_ms: number; baseline_ms: number; ratio: number; note: string }> {
  await ensureWebGpu();

  const pagedParams = makeParams(PARAMS, ELEMENTS_PER_PARAM);
  const paged = new PagedAdamW(pagedParams, { ...HYPER, deviceBudgetBytes: BUDGET });
  const ours = await timeSteps(() => paged.step(), WARMUP, TIMED);
  const stats = paged.lastPagedStats;
  paged.disposeState();
  for (const p of pagedParams) {
    p.grad?.dispose();
    p.dispose();
  }

  const plainParams = makeParams(PARAMS, ELEMENTS_PER_PARAM);
  const plain = new AdamW(plainParams, HYPER);
  const baseline = await timeSteps(() => plain.step(), WARMUP, TIMED);
  plain.disposeState();
  for (const p of plainParams) {
    p.grad?.dispose();
    p.dispose();
  }

  return {
    name: 'optim: AdamW step, 20 params / 20M elements, paged (25% budget) vs unpaged',
    ours_ms: ours,
    baseline_ms: baseline,
    ratio: baseline / ours,
    note: `paged: ${stats?.pages ?? 0} pages through ${stats?.slots ?? 0} device slots of ${((stats?.slotBytes ?? 0) / 2 ** 20).toFixed(1)} MiB (budget ${(BUDGET / 2 ** 20).toFixed(0)} MiB of ${(STATE_BYTES / 2 ** 20).toFixed(0)} MiB state), host<->device each step; unpaged: fused AdamW with resident states; ${WARMUP} warmup + ${TIMED} timed steps each (ratio < 1 means paging costs time)`,
  };
}
