import { matmul, rand, sync, init } from '@webpeft/tensor';
await init({ backend: 'webgpu' });
const cfgs = JSON.parse(process.argv[2]);
const shapes = JSON.parse(process.argv[3]);
for (const [m, k, n] of shapes) {
  const a = rand([m, k]), b = rand([k, n]);
  const res: Record<string, number[]> = {};
  for (let rep = 0; rep < 6; rep++) for (const c of cfgs) {
    (globalThis as any).__TS = { wgX: c[0], wgY: c[1], rows: c[2], cols: c[3] };
    const t0 = performance.now(); const out = matmul(a, b); await sync(); (res[c.join(',')] ??= []).push(performance.now() - t0); out.dispose();
  }
  console.log(m, k, n, Object.entries(res).map(([c, t]) => { t = t.slice(1).sort((x, y) => x - y); return `${c}: ${t[2].toFixed(1)}`; }).join(' | '));
}
