import { configureMatmulAutotune, matmul, rand, sync, tuneMatmul } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

/** `[m x k] x [k x n]` f32 matmuls: square sizes and the two LoRA projections (rank 8, hidden 768, 4096 tokens). */
const SHAPES: [number, number, number, string][] = [
  [256, 256, 256, ''],
  [1024, 1024, 1024, ''],
  [4096, 768, 8, 'LoRA down (x A^T)'],
  [4096, 8, 768, 'LoRA up (h B^T)'],
];

/**
 * Each row times the autotuned kernel (ours: `tuneMatmul` picks among the candidate
 * configurations on this adapter first, one timed run each, persisted in
 * `WEBPEFT_MATMUL_TUNE_DIR` when set) against the fixed heuristic (baseline: what runs
 * with autotuning off) and tfjs, side by side in one process.
 */
for (const [m, k, n, note] of SHAPES) {
  registerRow({
    group: 'matmul',
    name: `[${m}x${k}] x [${k}x${n}]`,
    async run(ctx) {
      const a = rand([m, k]);
      const b = rand([k, n]);
      const time = () =>
        medianMs(async () => {
          const c = matmul(a, b);
          await sync();
          c.dispose();
        }, ctx.runs);
      let oursMs: number;
      let baselineMs: number;
      let chosen: string;
      try {
        await configureMatmulAutotune({ autotune: false });
        baselineMs = await time();
        await configureMatmulAutotune({ autotune: true });
        [{ chosen }] = await tuneMatmul([{ m, k, n }], { runs: 1 });
        oursMs = await time();
      } finally {
        await configureMatmulAutotune({ autotune: false });
        a.dispose();
        b.dispose();
      }
      let tfjsMs: number | undefined;
      if (ctx.tf) {
        const tf = ctx.tf;
        const ta = tf.randomUniform([m, k]);
        const tb = tf.randomUniform([k, n]);
        tfjsMs = await medianMs(async () => {
          const c = tf.matMul(ta, tb);
          await ctx.tfSync();
          c.dispose();
        }, ctx.runs);
        tf.dispose([ta, tb]);
      }
      return { oursMs, tfjsMs, baselineMs, baselineName: 'fixed heuristic', flops: 2 * m * n * k, note: `${note ? `${note}; ` : ''}autotuned: ${chosen}` };
    },
  });
}
