import { add, ones, sync } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

/** Chained tiny ops: the cost of one dispatch (recording, bind group, uniforms, allocation). */
const OPS = 1000;

registerRow({
  group: 'dispatch',
  name: `${OPS} chained add on [16]`,
  async run(ctx) {
    const oursMs = await medianMs(async () => {
      let x = ones([16]);
      for (let i = 0; i < OPS; i++) {
        const y = add(x, 1);
        x.dispose();
        x = y;
      }
      await sync();
      x.dispose();
    }, ctx.runs);
    let tfjsMs: number | undefined;
    if (ctx.tf) {
      const tf = ctx.tf;
      tfjsMs = await medianMs(async () => {
        let x = tf.ones([16]);
        for (let i = 0; i < OPS; i++) {
          const y = tf.add(x, 1);
          x.dispose();
          x = y;
        }
        await ctx.tfSync();
        x.dispose();
      }, ctx.runs);
    }
    const oursUsPerOp = (oursMs * 1000) / OPS;
    const tfjsUsPerOp = tfjsMs === undefined ? undefined : (tfjsMs * 1000) / OPS;
    const tfjsNote = tfjsUsPerOp === undefined ? '' : `, ${tfjsUsPerOp.toFixed(1)} us/op tfjs`;
    return { oursMs, tfjsMs, oursUsPerOp, tfjsUsPerOp, note: `${oursUsPerOp.toFixed(1)} us/op ours${tfjsNote}` };
  },
});
