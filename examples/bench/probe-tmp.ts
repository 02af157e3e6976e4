for (const k of ['WGX','WGY','MMV','ROWS']) if (process.env[k]) (globalThis as any)['__' + k] = process.env[k];
const T = await import('../../packages/tensor/dist/index.js');
await T.init({ backend: 'webgpu' });
const shapes: [number, number, number, boolean, boolean][] = (JSON.parse(process.argv[2] ?? 'null')) ?? [[256,256,256,false,false]];
for (const [m, k, n, tA, tB] of shapes) {
  const a = T.rand(tA ? [k, m] : [m, k]); const b = T.rand(tB ? [n, k] : [k, n]);
  let t0 = performance.now();
  let c = T.matmul(a, b, { transposeA: tA, transposeB: tB }); await c.data(); c.dispose();
  const first = performance.now() - t0;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) { t0 = performance.now(); c = T.matmul(a, b, { transposeA: tA, transposeB: tB }); await T.sync(); times.push(performance.now() - t0); c.dispose(); }
  times.sort((x, y) => x - y);
  const med = times[2];
  console.log(`${m}x${k}x${n} ${+tA}${+tB}: first ${first.toFixed(0)} ms, median ${med.toFixed(2)} ms, ${(2*m*n*k/med/1e6).toFixed(2)} GFLOP/s`);
}
