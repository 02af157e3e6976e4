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
    const acc4 = transposeB ? [] : [0, 1, 2, 3].map(() => new Float64Array(n));
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
      if (transposeB && !transposeA) {
        // Rows of A and of B (n x k) are both contiguous: one dot product per output, its
        // terms summed in the same order (p ascending, zeros of A skipped) as the loop
        // below, so the result is the same to the bit, without a stride-k walk over B.
        for (let i = 0; i < m; i++) {
          const aBase = aOff + i * k;
          const oBase = (t * m + i) * n;
          for (let j = 0; j < n; j++) {
            const bBase = bOff + j * k;
            let s = 0;
            for (let p = 0; p < k; p++) {
              const x = av[aBase + p];
              if (x !== 0) s += x * bv[bBase + p];
            }
            ov[oBase + j] = s;
          }
        }
        continue;
      }
      let i = 0;
      if (!transposeB) {
        // Four rows at a time over contiguous rows of B: each row of B is read once per
        // four outputs rows instead of once per row. Every sum keeps its order.
        for (; i + 4 <= m; i += 4) {
          for (const r of acc4) r.fill(0);
          const [r0, r1, r2, r3] = acc4;
          for (let p = 0; p < k; p++) {
            const a0 = av[aOff + i * aRow + p * aCol];
            const a1 = av[aOff + (i + 1) * aRow + p * aCol];
            const a2 = av[aOff + (i + 2) * aRow + p * aCol];
            const a3 = av[aOff + (i + 3) * aRow + p * aCol];
            const bBase = bOff + p * n;
            if (a0 !== 0 && a1 !== 0 && a2 !== 0 && a3 !== 0) {
              for (let j = 0; j < n; j++) {
                const b = bv[bBase + j];
                r0[j] += a0 * b;
                r1[j] += a1 * b;
                r2[j] += a2 * b;
                r3[j] += a3 * b;
              }
            } else {
              const as = [a0, a1, a2, a3];
              for (let q = 0; q < 4; q++) {
                const x = as[q];
                if (x === 0) continue;
                const rq = acc4[q];
                for (let j = 0; j < n; j++) rq[j] += x * bv[bBase + j];
              }
            }
          }
          for (let q = 0; q < 4; q++) ov.set(acc4[q], (t * m + i + q) * n);
        }
      }
      for (; i < m; i++) {
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
