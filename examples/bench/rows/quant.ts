/**
 * 4-bit rows: the fused NF4 dequant-matmul (`linear4bit`) against dequantize-then-matmul
 * and against an f32 matmul of the same shape (`f32OverFused`), on a [4096 x 4096] weight
 * with 1 to 512 rows of input.
 */
import { dequantize4bit, linear4bit, quantize4bit } from '@webpeft/quant';
import { type Tensor, matmul, noGrad, randn, sync, tidy } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

const IN = 4096;
const OUT = 4096;
let weight: { w: Tensor; packed: Awaited<ReturnType<typeof quantize4bit>> } | null = null;

async function sharedWeight(): Promise<NonNullable<typeof weight>> {
  if (!weight) {
    const w = randn([OUT, IN]);
    weight = { w, packed: await quantize4bit(w, { quantType: 'nf4', doubleQuant: true }) };
  }
  return weight;
}

for (const rows of [1, 16, 64, 128, 512]) {
  registerRow({
    group: 'nf4 matmul',
    name: `[${rows}x${IN}] x [${OUT}x${IN}]^T`,
    async run(ctx) {
      const { w, packed } = await sharedWeight();
      const x = randn([rows, IN]);
      const runs = Math.min(ctx.runs, 3);
      const fused = await medianMs(async () => {
        noGrad(() => linear4bit(x, { packed: packed.packed, quantState: packed.state })).dispose();
        await sync();
      }, runs, 1);
      const unfused = await medianMs(async () => {
        noGrad(() => tidy(() => matmul(x, dequantize4bit(packed.packed, packed.state), { transposeB: true }))).dispose();
        await sync();
      }, runs, 1);
      const f32 = await medianMs(async () => {
        noGrad(() => matmul(x, w, { transposeB: true })).dispose();
        await sync();
      }, runs, 1);
      x.dispose();
      return {
        oursMs: fused,
        flops: 2 * rows * IN * OUT,
        baselineMs: unfused,
        baselineName: 'dequantize + matmul',
        f32OverFused: f32 / fused,
        note: `f32 matmul ${f32.toFixed(2)} ms (f32/fused ${(f32 / fused).toFixed(2)})`,
      };
    },
  });
}
