/**
 * Gradients through the f16 path against the same computation in f32 from the same
 * (f16-representable) inputs. Each f16 op rounds its output once (relative error at
 * most 2^-11) and backward chains a few such ops, so the f16 gradients are bounded by
 * `|g16 - g32| <= 2^-6 * max|g32|` (eight roundings' worth of error, counted against the
 * largest gradient because small entries are sums that cancel). Runs on webgpu where
 * available, else on the cpu reference.
 */
import {
  type BackendName,
  type DType,
  type Tensor,
  cast,
  crossEntropy,
  f16BitsToF32,
  f32ToF16Bits,
  gather,
  gelu,
  layerNorm,
  logSoftmax,
  matmul,
  mul,
  reshape,
  rmsNorm,
  silu,
  softmax,
  sum,
  tensor,
  tidy,
} from '@webpeft/tensor';
import { initBackends, randomArray, randomInts } from '@webpeft/test-utils';
import { webgpuHasF16 } from './f16-helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

let seed = 8200;
const BOUND = 2 ** -6;

/** Values already on the f16 grid, so f16 and f32 runs start from identical inputs. */
function f16Grid(n: number, lo = -1.5, hi = 1.5): Float32Array {
  return Float32Array.from(randomArray(n, seed++, lo, hi), (v) => f16BitsToF32(f32ToF16Bits(v)));
}

interface GIn {
  data: Float32Array | Int32Array;
  shape: number[];
  grad: boolean;
}

/** Gradients of `loss(...xs)` for the float inputs, run in `dtype` on `backend`, read as f32. */
async function gradsIn(backend: BackendName, dtype: DType, loss: (...xs: Tensor[]) => Tensor, inputs: readonly GIn[]): Promise<Float32Array[]> {
  const xs = inputs.map((x) =>
    x.data instanceof Int32Array ? tensor(x.data, x.shape, { backend }) : tensor(x.data, x.shape, { backend, dtype, requiresGrad: x.grad }),
  );
  tidy(() => {
    const l = loss(...xs);
    expect(l.size).toBe(1);
    l.backward();
  });
  const out: Float32Array[] = [];
  for (const x of xs) {
    if (x.requiresGrad) {
      expect(x.grad!.dtype, 'a leaf gets a gradient of its own dtype').toBe(dtype);
      const g = cast(x.grad!, 'f32');
      out.push((await g.data()) as Float32Array);
      g.dispose();
    }
    x.dispose();
  }
  return out;
}

async function compare(label: string, loss: (...xs: Tensor[]) => Tensor, inputs: readonly GIn[]): Promise<void> {
  const backend = webgpuHasF16() ? 'webgpu' : 'cpu';
  const g32 = await gradsIn(backend, 'f32', loss, inputs);
  const g16 = await gradsIn(backend, 'f16', loss, inputs);
  for (let i = 0; i < g32.length; i++) {
    const scale = g32[i].reduce((p, v) => Math.max(p, Math.abs(v)), 0);
    expect(scale, `${label}: gradient ${i} is not all zero`).toBeGreaterThan(0);
    let worst = 0;
    for (let j = 0; j < g32[i].length; j++) worst = Math.max(worst, Math.abs(g16[i][j] - g32[i][j]));
    expect(worst / scale, `${label}: gradient ${i}, max |g16 - g32| / max |g32|`).toBeLessThanOrEqual(BOUND);
  }
}

/** A weighted sum (fixed weights on the f16 grid) turning any output into a scalar loss. */
function weighted(y: Tensor): Tensor {
  const w = tensor(Float32Array.from({ length: y.size }, (_, i) => Math.round(64 * Math.cos(1.3 * i + 0.7)) / 64), y.shape, { backend: y.backend.name, dtype: y.dtype });
  return sum(mul(y, w));
}

describe('f16 gradients agree with f32 gradients', () => {
  it('matmul, gelu and silu', async () => {
    await compare('matmul+gelu', (x, w) => weighted(gelu(matmul(x, w, { transposeB: true }))), [
      // Multiples of 4: the aligned matmul shaders compile fast on software adapters.
      { data: f16Grid(8 * 20), shape: [8, 20], grad: true },
      { data: f16Grid(12 * 20), shape: [12, 20], grad: true },
    ]);
    await compare('silu', (x) => weighted(silu(x)), [{ data: f16Grid(50, -4, 4), shape: [50], grad: true }]);
  });
  it('softmax and log-softmax', async () => {
    await compare('softmax', (x) => weighted(softmax(x)), [{ data: f16Grid(4 * 30, -3, 3), shape: [4, 30], grad: true }]);
    await compare('logSoftmax', (x) => weighted(logSoftmax(x)), [{ data: f16Grid(4 * 30, -3, 3), shape: [4, 30], grad: true }]);
  });
  it('layer norm and RMS norm', async () => {
    await compare('layerNorm', (x, g, b) => weighted(layerNorm(x, g, b)), [
      { data: f16Grid(5 * 40), shape: [5, 40], grad: true },
      { data: f16Grid(40, 0.5, 1.5), shape: [40], grad: true },
      { data: f16Grid(40), shape: [40], grad: true },
    ]);
    await compare('rmsNorm', (x, g) => weighted(rmsNorm(x, g)), [
      { data: f16Grid(5 * 40), shape: [5, 40], grad: true },
      { data: f16Grid(40, 0.5, 1.5), shape: [40], grad: true },
    ]);
  });
  it('embedding gather and cross-entropy (f32 loss)', async () => {
    await compare('gather+matmul+crossEntropy', (emb, ids, labels) => {
      const h = gather(emb, ids);
      const logits = matmul(reshape(h, [8, 16]), emb, { transposeB: true });
      const loss = crossEntropy(logits, labels);
      expect(loss.dtype).toBe('f32');
      return loss;
    }, [
      { data: f16Grid(32 * 16), shape: [32, 16], grad: true },
      { data: randomInts(8, 32, seed++), shape: [2, 4], grad: false },
      { data: randomInts(8, 32, seed++), shape: [8], grad: false },
    ]);
  });
});
