import { cast, getBackend, matmul, rand, sync } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

/**
 * f16 matmul (f16 storage, f32 accumulation) next to the same product in f32, side by
 * side in one run: square and LoRA shapes. The ratio is what half precision buys on the
 * adapter (on GPUs with fast f16 paths, and in bytes moved everywhere).
 */
const SHAPES: [number, number, number, string][] = [
  [1024, 1024, 1024, ''],
  [4096, 768, 8, 'LoRA down (x A^T)'],
  [4096, 8, 768, 'LoRA up (h B^T)'],
];

for (const [m, k, n, note] of SHAPES) {
  registerRow({
    group: 'matmul f16',
    name: `[${m}x${k}] x [${k}x${n}] f16`,
    async run(ctx) {
      if (!getBackend('webgpu').capabilities.f16) throw new Error("this adapter has no 'shader-f16'");
      const a = rand([m, k]);
      const b = rand([k, n]);
      const a16 = cast(a, 'f16');
      const b16 = cast(b, 'f16');
      const time = (x: typeof a, y: typeof b) =>
        medianMs(async () => {
          const c = matmul(x, y);
          await sync();
          c.dispose();
        }, ctx.runs);
      const oursMs = await time(a16, b16);
      const baselineMs = await time(a, b);
      for (const t of [a, b, a16, b16]) t.dispose();
      return { oursMs, baselineMs, baselineName: 'f32', flops: 2 * m * n * k, note };
    },
  });
}
