import { add, ones, sync } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

/** Chained tiny ops: the cost of one dispatch (recording, bind group, uniforms, allocation). */
const OPS = 1000;

/**
 * Fastest of `runs` timings of `record` alone (the host's recording of the ops, before
 * any wait for the device), after two warm-up runs; `finish` waits for the device
 * untimed. The minimum is the figure least disturbed by other jobs on a shared machine.
 */
async function minRecordMs(record: () => unknown, finish: (r: unknown) => Promise<void>, runs: number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < runs + 2; i++) {
    const t0 = performance.now();
    const r = record();
    const ms = performance.now() - t0;
    await finish(r);
    if (i >= 2) best = Math.min(best, ms);
  }
  return best;
}

registerRow({
  group: 'dispatch',
  name: `${OPS} chained add on [16]`,
  async run(ctx) {
    const chain = () => {
      let x = ones([16]);
      for (let i = 0; i < OPS; i++) {
        const y = add(x, 1);
        x.dispose();
        x = y;
      }
      return x;
    };
    const oursMs = await medianMs(async () => {
      const x = chain();
      await sync();
      x.dispose();
    }, ctx.runs);
    await sync();
    const oursHostUsPerOp =
      (1000 / OPS) *
      (await minRecordMs(chain, async (x) => {
        await sync();
        (x as ReturnType<typeof chain>).dispose();
      }, 2 * ctx.runs));
    let tfjsMs: number | undefined;
    let tfjsHostUsPerOp: number | undefined;
    let tfjsCpuForwardUsPerOp: number | undefined;
    if (ctx.tf) {
      const tf = ctx.tf;
      const tfChain = () => {
        let x = tf.ones([16]);
        for (let i = 0; i < OPS; i++) {
          const y = tf.add(x, 1);
          x.dispose();
          x = y;
        }
        return x;
      };
      const tfMedianMs = () =>
        medianMs(async () => {
          const x = tfChain();
          await ctx.tfSync();
          x.dispose();
        }, ctx.runs);
      // tfjs-webgpu runs an op on the CPU when all its inputs are host-resident and it
      // has under 1000 elements (`WEBGPU_CPU_FORWARD`, on by default): the whole [16]
      // chain then never reaches the GPU. The row compares dispatches, so tfjs's column
      // has that shortcut off; its time with the shortcut is kept as a separate field.
      const env = tf.env();
      const cpuForward = env.getBool('WEBGPU_CPU_FORWARD');
      tfjsCpuForwardUsPerOp = ((await tfMedianMs()) * 1000) / OPS;
      env.set('WEBGPU_CPU_FORWARD', false);
      try {
        tfjsMs = await tfMedianMs();
        tfjsHostUsPerOp =
          (1000 / OPS) *
          (await minRecordMs(tfChain, async (x) => {
            await ctx.tfSync();
            (x as ReturnType<typeof tfChain>).dispose();
          }, 2 * ctx.runs));
      } finally {
        env.set('WEBGPU_CPU_FORWARD', cpuForward);
      }
    }
    const oursUsPerOp = (oursMs * 1000) / OPS;
    const tfjsUsPerOp = tfjsMs === undefined ? undefined : (tfjsMs * 1000) / OPS;
    const tfjsNote =
      tfjsUsPerOp === undefined || tfjsCpuForwardUsPerOp === undefined
        ? ''
        : `, ${tfjsUsPerOp.toFixed(1)} us/op tfjs dispatching (${tfjsCpuForwardUsPerOp.toFixed(1)} with its CPU shortcut for small ops)`;
    const hostNote = `; recording only (fastest run): ${oursHostUsPerOp.toFixed(1)} us/op ours${tfjsHostUsPerOp === undefined ? '' : `, ${tfjsHostUsPerOp.toFixed(1)} tfjs`}`;
    return { oursMs, tfjsMs, oursUsPerOp, tfjsUsPerOp, tfjsCpuForwardUsPerOp, oursHostUsPerOp, tfjsHostUsPerOp, note: `${oursUsPerOp.toFixed(1)} us/op ours${tfjsNote}${hostNote}` };
  },
});
