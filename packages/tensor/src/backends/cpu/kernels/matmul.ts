import { registerKernel } from '../../../registry.js';
import { broadcastShapes, broadcastStrides } from '../../../shape.js';
import { cpuData } from '../cpu-data.js';
import { widenF16 } from '../f16-widen.js';
import { matmulShapes } from '../../../ops/matmul-shapes.js';

/** Registers the cpu kernels of this file. */
export function registerCpuMatmulKernels(): void {
  registerKernel('MatMul', 'cpu', widenF16((inputs, { transposeA, transposeB }, ctx) => {
    const [a, b] = inputs;
    const { m, k, n, batchShape } = matmulShapes(a.shape, b.shape, transposeA, transposeB);
    const out = ctx.output([...batchShape, m, n], a.dtype, 'matmul');
    const av = cpuData(a);
    const bv = cpuData(b);
    const ov = cpuData(out);
    const batch = batchShape.reduce((p, d) => p * d, 1);
    const aBatch = broadcastStrides(a.shape.slice(0, -2), batchShape);
    const bBatch = broadcastStrides(b.shape.slice(0, -2), batchShape);
    broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    // Element (i, p) of A and (p, j) of B, honouring the transpose flags.
    const aRow = transposeA ? 1 : k;
    const aCol = transposeA ? m : 1;
    const bRow = transposeB ? 1 : n;
    const bCol = transposeB ? k : 1;
    const acc = new Float64Array(n);
    for (let t = 0; t < batch; t++) {
      let rem = t;
      let aOff = 0;
      let bOff = 0;
      for (let d = batchShape.length - 1; d >= 0; d--) {
        const c = rem % batchShape[d];
        rem = Math.floor(rem / batchShape[d]);
        aOff += c * aBatch[d];
        bOff += c * bBatch[d];
      }
      aOff *= m * k;
      bOff *= k * n;
      for (let i = 0; i < m; i++) {
        acc.fill(0);
        for (let p = 0; p < k; p++) {
          const av_ip = av[aOff + i * aRow + p * aCol];
          if (av_ip === 0) continue;
          const bBase = bOff + p * bRow;
          for (let j = 0; j < n; j++) acc[j] += av_ip * bv[bBase + j * bCol];
        }
        ov.set(acc, (t * m + i) * n);
      }
    }
    return out;
  }));
}
