import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
(globalThis as any).__gpu = gpu;
(globalThis as any).navigator = { gpu, userAgent: 'node' };
const tf = await import('@tensorflow/tfjs-core');
await import('@tensorflow/tfjs-backend-webgpu');
await tf.setBackend('webgpu');
const shapes: [number, number, number][] = JSON.parse(process.argv[2]);
for (const [m, k, n] of shapes) {
  const a = tf.randomUniform([m, k]); const b = tf.randomUniform([k, n]);
  let c = tf.matMul(a, b); await c.data(); c.dispose();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) { const t0 = performance.now(); c = tf.matMul(a, b); await c.data(); times.push(performance.now() - t0); c.dispose(); }
  times.sort((x, y) => x - y);
  console.log(`tfjs ${m}x${k}x${n}: median ${times[2].toFixed(2)} ms, ${(2*m*n*k/times[2]/1e6).toFixed(2)} GFLOP/s`);
}
