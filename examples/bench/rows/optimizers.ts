import { benchAdamWFusedVsPerOp } from './optim.ts';
import { bench8bitDispatches } from './optim-8bit.ts';
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

registerRow({
  group: 'optim',
  name: 'AdamW8bit / PagedAdamW8bit step, 24 params / 3.1M elements',
  async run() {
    const r = await bench8bitDispatches();
    // `dispatchesPerStep` counts the 8-bit kernel's dispatches (one for all parameters;
    // one per page when paged), the note the paged optimizer's.
    return { oursMs: r.ms, dispatchesPerStep: r.dispatches, note: `Adam8bitStep dispatches: AdamW8bit ${r.dispatches}, PagedAdamW8bit ${r.pagedDispatches} (${r.pages} pages)` };
  },
});
