import { engine } from '../../../engine.js';
import { registerKernel } from '../../../registry.js';
import { broadcastStrides } from '../../../shape.js';
import { matmulShapes } from '../../../ops/matmul-shapes.js';
import { program, runKernel } from '../run-kernel.js';
import type { WebGpuBackend } from '../webgpu-backend.js';
import { Uniforms, checkRank, elementMain, grid, storageBindings, stridedOffset } from '../wgsl.js';

const WG = 64;

/** Registers the webgpu matmul kernel. */
export function registerWebGpuMatmulKernels(): void {
  registerKernel('MatMul', 'webgpu', (inputs, { transposeA, transposeB }, backend) => {
    const [a, b] = inputs;
    const { m, k, n, batchShape } = matmulShapes(a.shape, b.shape, transposeA, transposeB);
    checkRank('matmul', [...batchShape, m, n]);
    const out = engine.makeTensor(backend, [...batchShape, m, n], 'f32', 'matmul');
    const batch = batchShape.reduce((p, d) => p * d, 1);
    const rank = batchShape.length;
    const u = new Uniforms()
      .arr('bshape', batchShape)
      .arr('sa', broadcastStrides(a.shape.slice(0, -2), batchShape))
      .arr('sb', broadcastStrides(b.shape.slice(0, -2), batchShape))
      .u32('size', batch * m * n)
      .u32('m', m)
      .u32('k', k)
      .u32('n', n);
    const aIndex = transposeA ? 'p * u.m + r' : 'r * u.k + p';
    const bIndex = transposeB ? 'c * u.k + p' : 'p * u.n + c';
    const prog = program(`matmul/naive/${+transposeA}${+transposeB}/b${rank}`, 2, 1, () => `${storageBindings([['A', 'f32'], ['B', 'f32']], [['C', 'f32']])}
${u.declaration(3)}
${elementMain(WG, 'u.size')}
  let c = i % u.n;
  let r = (i / u.n) % u.m;
  let t = i / (u.n * u.m);
  ${rank > 0 ? stridedOffset(rank, 't', 'bshape', 'sa', '0u', 'ta') : 'let ta = 0u;'}
  ${rank > 0 ? stridedOffset(rank, 't', 'bshape', 'sb', '0u', 'tb') : 'let tb = 0u;'}
  let aOff = ta * u.m * u.k;
  let bOff = tb * u.k * u.n;
  var acc = 0.0;
  for (var p = 0u; p < u.k; p++) {
    acc = acc + A[aOff + ${aIndex}] * B[bOff + ${bIndex}];
  }
  C[i] = acc;
}`);
    runKernel(backend as WebGpuBackend, prog, [a, b], [out], u, grid(batch * m * n, WG));
    return out;
  });
}
