/**
 * `Linear4bit` with f16 compute (bitsandbytes' `compute_dtype=float16`): the weight is
 * dequantized to f16 and multiplied by an f16 matmul with f32 accumulation. webgpu
 * against the cpu reference (which rounds the dequantized weight to f16, sums wide and
 * rounds once) within 1 f16 ulp, for few rows (f16 inputs take the dequantize path at any row count)
 * and many; and against the same layer in f32 compute within f16's resolution.
 */
import { Linear4bit } from '@webpeft/quant';
import { type BackendName, type Tensor, cast, f16BitsToF32, getBackend, sum, tensor, tidy } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});

const [OUT, IN] = [24, 64];
const W = randomArray(OUT * IN, 501, -1, 1);
const BIAS = randomArray(OUT, 502, -0.5, 0.5);

/** f16 bits of the layer's output and of dx (input gradient), and the f32-compute output. */
async function runOn(backend: BackendName, rows: number) {
  const w = tensor(W, [OUT, IN], { backend });
  const b = tensor(BIAS, [OUT], { backend, dtype: 'f16' });
  const q16 = await Linear4bit.fromWeight(w, b, { computeDtype: 'f16' });
  const x = tensor(randomArray(rows * IN, 503 + rows, -2, 2), [rows, IN], { backend, dtype: 'f16', requiresGrad: true });
  const y = q16.forward(x);
  expect(y.dtype).toBe('f16');
  tidy(() => sum(cast(y, 'f32')).backward());
  expect(x.grad!.dtype).toBe('f16');
  const out = { y: (await y.data()) as Uint16Array, dx: (await x.grad!.data()) as Uint16Array };
  // The same layer computing in f32 (x widened, bias in f32).
  const x32 = cast(x, 'f32');
  const b32 = cast(b, 'f32');
  const q32 = await Linear4bit.fromWeight(w, b32, {});
  const y32 = q32.forward(x32);
  const ref = (await y32.data()) as Float32Array;
  for (const t of [w, b, x, y, x32, b32, y32] as Tensor[]) t.dispose();
  q16.quantState.dispose();
  q16.packedWeight.dispose();
  q32.quantState.dispose();
  q32.packedWeight.dispose();
  return { ...out, ref };
}

function ulps(a: number, b: number): number {
  const ord = (h: number) => (h & 0x8000 ? -(h & 0x7fff) : h);
  return Math.abs(ord(a) - ord(b));
}

describe('Linear4bit with f16 compute', () => {
  for (const rows of [3, 20]) {
    it(`${rows} rows: webgpu vs the cpu reference, and vs f32 compute`, async () => {
      const cpu = await runOn('cpu', rows);
      // f16 compute vs f32 compute: the f16 output rounds inputs, weight and result once each.
      const scale = cpu.ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (let i = 0; i < cpu.y.length; i++) expect(Math.abs(f16BitsToF32(cpu.y[i]) - cpu.ref[i]), `y[${i}]`).toBeLessThanOrEqual(2 ** -8 * scale);
      // An adapter without shader-f16 has no f16 path to compare (the tensor suite checks its refusal).
      if (!backendsUnderTest().includes('webgpu') || !getBackend('webgpu').capabilities.f16) return;
      const gpu = await runOn('webgpu', rows);
      for (let i = 0; i < cpu.y.length; i++) expect(ulps(gpu.y[i], cpu.y[i]), `y[${i}]`).toBeLessThanOrEqual(1);
      for (let i = 0; i < cpu.dx.length; i++) expect(ulps(gpu.dx[i], cpu.dx[i]), `dx[${i}]`).toBeLessThanOrEqual(1);
    });
  }
});
