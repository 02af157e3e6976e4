import { benchAdamWFusedVsPerOp } from './optim.ts';
import { benchPagedVsUnpagedAdamW } from './paged.ts';
import { registerRow } from '../table.ts';

// Optimizer rows compare two of our own implementations side by side (tfjs has no
// equivalent fused or paged optimizer): the baseline column holds the other one.
registerRow({
  group: 'optim',
  name: 'AdamW step, 100 params / 10M elements',
  async run() {
    const r = await benchAdamWFusedVsPerOp();
    return { oursMs: r.ours_ms, baselineMs: r.baseline_ms, baselineName: 'one dispatch per op', note: `fused; ${r.note}` };
  },
});

registerRow({
  group: 'optim',
  name: 'PagedAdamW vs AdamW step',
  async run() {
    const r = await benchPagedVsUnpagedAdamW();
    // Here "ours" is the paged optimizer and the baseline the unpaged one: a ratio below
    // 1 is the price of keeping state in host memory.
    return { oursMs: r.ours_ms, baselineMs: r.baseline_ms, baselineName: 'unpaged AdamW', note: r.note };
  },
});
