/**
 * 4-bit rows: the fused NF4 dequant-matmul (`linear4bit`) against dequantize-then-matmul
 * and against an f32 matmul of the same shape (`f32OverFused`), on a [4096 x 4096] weight
 * with 1 to 512 rows of input. From 128 rows (matmul-bound) the row also times both
 * matmul-bound kernels of `Linear4bit` forced (`setLinear4bitMatmulKernel`): the tile-by-tile
 * decode and the transient weight, forward and input gradient, with their peak bytes and
 * the tiled kernel's first call (its pipeline compile, in the first such row).
 */
import { type Linear4bitAttrs, dequantize4bit, linear4bit, quantize4bit, setLinear4bitMatmulKernel, weightInputs } from '@webpeft/quant';
import { type Tensor, matmul, memory, noGrad, randn, resetPeakMemory, sync, tidy } from '@webpeft/tensor';
import { runOp } from '@webpeft/tensor/kernel';
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
      const kernels = rows >= 128 ? await matmulBoundKernels(x, packed) : null;
      x.dispose();
      return {
        ...(kernels ?? {}),
        oursMs: fused,
        flops: 2 * rows * IN * OUT,
        baselineMs: unfused,
        baselineName: 'dequantize + matmul',
        f32OverFused: f32 / fused,
        note:
          `f32 matmul ${f32.toFixed(2)} ms (f32/fused ${(f32 / fused).toFixed(2)})` +
          (kernels
            ? `; tiled fwd ${kernels.tiledMs.toFixed(1)} / dx ${kernels.tiledDxMs.toFixed(1)} ms (first call ${kernels.tiledFirstMs.toFixed(0)} ms), ` +
              `transient fwd ${kernels.transientMs.toFixed(1)} / dx ${kernels.transientDxMs.toFixed(1)} ms; ` +
              `peak ${(kernels.tiledPeakBytes / 2 ** 20).toFixed(1)} vs ${(kernels.transientPeakBytes / 2 ** 20).toFixed(1)} MiB`
            : ''),
      };
    },
  });
}

/**
 * Both matmul-bound kernels of `Linear4bit` on `x`, each forced in turn (side by side):
 * forward and `Linear4bitGradInput` median ms, the forward's peak bytes above the live
 * bytes before it, and the tiled kernel's first forward (includes its pipeline compile
 * when no earlier row built it).
 */
async function matmulBoundKernels(x: Tensor, q: Awaited<ReturnType<typeof quantize4bit>>) {
  const attrs: Linear4bitAttrs = {
    inFeatures: IN,
    outFeatures: OUT,
    blocksize: q.state.blocksize,
    nested: q.state.nested !== null,
    nestedBlocksize: q.state.nested?.blocksize ?? 0,
  };
  const weight = weightInputs({ packed: q.packed, quantState: q.state });
  const dy = randn([x.shape[0], OUT]);
  const forward = async () => {
    noGrad(() => runOp('Linear4bit', [x, ...weight], attrs)).dispose();
    await sync();
  };
  const gradInput = async () => {
    noGrad(() => runOp('Linear4bitGradInput', [dy, ...weight], attrs)).dispose();
    await sync();
  };
  const peak = async () => {
    await sync();
    const before = memory().liveBytes;
    resetPeakMemory();
    await forward();
    return memory().peakBytes - before;
  };
  try {
    setLinear4bitMatmulKernel('tiled');
    const t0 = performance.now();
    await forward();
    const tiledFirstMs = performance.now() - t0;
    await gradInput();
    const r = { tiledFirstMs, tiledMs: 0, tiledDxMs: 0, transientMs: 0, transientDxMs: 0, tiledPeakBytes: await peak(), transientPeakBytes: 0 };
    setLinear4bitMatmulKernel('dequantize');
    r.transientPeakBytes = await peak();
    // Alternating single runs, so both kernels see the same machine load.
    const runs = 3;
    const times: Record<'tf' | 'td' | 'qf' | 'qd', number[]> = { tf: [], td: [], qf: [], qd: [] };
    for (let i = 0; i < runs; i++) {
      for (const [kernel, f, d] of [
        ['tiled', 'tf', 'td'],
        ['dequantize', 'qf', 'qd'],
      ] as const) {
        setLinear4bitMatmulKernel(kernel);
        times[f].push(await medianMs(forward, 1, 0));
        times[d].push(await medianMs(gradInput, 1, 0));
      }
    }
    const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    return { ...r, tiledMs: med(times.tf), tiledDxMs: med(times.td), transientMs: med(times.qf), transientDxMs: med(times.qd) };
  } finally {
    setLinear4bitMatmulKernel('auto');
    dy.dispose();
  }
}
