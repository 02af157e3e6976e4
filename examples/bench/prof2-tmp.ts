import { matmul, rand, sync, init } from '@webpeft/tensor';
import { setMatmulVariantOverride } from '../../packages/tensor/dist/backends/webgpu/kernels/matmul.js';
await init({ backend: 'webgpu' });
(globalThis as any).__TS = { wgX: 8, wgY: 8, rows: 4 };
for (const [m, k, n] of [[4096, 8, 768], [4096, 768, 8]]) {
  const a = rand([m, k]), b = rand([k, n]);
  const res: Record<string, number[]> = {};
  for (let rep = 0; rep < 6; rep++) for (const v of ['smallk', 'tile', 'splitk'] as const) {
    setMatmulVariantOverride(v);
    const t0 = performance.now(); const out = matmul(a, b); await sync(); (res[v] ??= []).push(performance.now() - t0); out.dispose();
  }
  console.log(m, k, n, Object.entries(res).map(([c, t]) => { t = t.slice(1).sort((x, y) => x - y); return `${c}: ${t[2].toFixed(1)}`; }).join(' | '));
}
