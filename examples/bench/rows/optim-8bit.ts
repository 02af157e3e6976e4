/**
 * The 8-bit optimizers' step: its time and the dispatches of `Adam8bitStep` counted by
 * `profile()`, for AdamW8bit (device states) and PagedAdamW8bit (host pages, 4 MiB each).
 */
import { AdamW8bit, PagedAdamW8bit } from '@webpeft/quant';
import { type Tensor, profile, randn, sync } from '@webpeft/tensor';
import { medianMs } from '../timing.ts';

const PARAMS = 24;
const ELEMENTS = 128 * 1024;

/** Median step time of AdamW8bit and the dispatches of one step of each optimizer. */
export async function bench8bitDispatches(): Promise<{ ms: number; dispatches: number; pagedDispatches: number; pages: number }> {
  const params: Tensor[] = Array.from({ length: PARAMS }, () => randn([ELEMENTS], { requiresGrad: true }));
  for (const p of params) p.grad = randn([ELEMENTS]);
  try {
    const opt = new AdamW8bit(params, { lr: 1e-4 });
    const ms = await medianMs(async () => {
      await opt.step();
      await sync();
    }, 3, 1);
    const dispatches = (await profile(() => opt.step())).ops.Adam8bitStep?.dispatches ?? 0;
    opt.disposeState();
    const paged = new PagedAdamW8bit(params, { lr: 1e-4, deviceBudgetBytes: 8 << 20, pageBytes: 4 << 20 });
    await paged.step();
    const pagedDispatches = (await profile(() => paged.step())).ops.Adam8bitStep?.dispatches ?? 0;
    const pages = paged.lastPagedStats?.pages ?? 0;
    paged.disposeState();
    return { ms, dispatches, pagedDispatches, pages };
  } finally {
    for (const p of params) {
      p.grad?.dispose();
      p.dispose();
    }
  }
}
