/**
 * `checkpoint(fn, inputs)`: the forward keeps only the inputs, backward recomputes `fn`
 * (replaying its dropout masks) and gives the gradients of the run without it, bit for
 * bit; activations held between forward and backward fall.
 */
import * as T from '@webpeft/tensor';
import { type Tensor, checkpoint, manualSeed, memory, resetPeakMemory, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await initBackends();
});

const D = 8;

/** One block: `x + dropout(tanh(x @ w1)) @ w2`, `[N, D] -> [N, D]`. */
function block(x: Tensor, w1: Tensor, w2: Tensor, p: number): Tensor {
  return T.tidy(() => T.add(x, T.matmul(T.dropout(T.tanh(T.matmul(x, w1)), p), w2)));
}

interface Run {
  loss: Float32Array;
  grads: Float32Array[];
}

/** Loss `sum(blocks(a * s))` of `layers` blocks and its gradients, with or without checkpoints. */
async function run(backend: T.BackendName, layers: number, p: number, ckpt: boolean, preserveRngState = true): Promise<Run> {
  const a = tensor(randomArray(4 * D, 1), [4, D], { backend });
  const s = tensor(randomArray(4 * D, 2), [4, D], { backend, requiresGrad: true });
  const ws = Array.from({ length: 2 * layers }, (_, i) => tensor(randomArray(D * D, 10 + i, -0.5, 0.5), [D, D], { backend, requiresGrad: true }));
  manualSeed(7);
  const loss = T.tidy(() => {
    // x has a graph of its own (a * s), as a decoder layer's input does.
    let x = T.mul(a, s);
    for (let l = 0; l < layers; l++) {
      const [w1, w2] = [ws[2 * l], ws[2 * l + 1]];
      x = ckpt ? checkpoint(([h]) => block(h, w1, w2, p), [x], { preserveRngState }) : block(x, w1, w2, p);
    }
    return T.sum(x);
  });
  loss.backward();
  const out = { loss: (await loss.data()) as Float32Array, grads: [] as Float32Array[] };
  for (const t of [s, ...ws]) out.grads.push((await t.grad!.data()) as Float32Array);
  for (const t of [loss, a, s, ...ws]) t.dispose();
  return out;
}

/** Bitwise equality of float arrays (also tells -0 from +0). */
function expectBitIdentical(actual: Float32Array, expected: Float32Array, label: string): void {
  expect(new Uint32Array(actual.buffer, actual.byteOffset, actual.length), label).toEqual(new Uint32Array(expected.buffer, expected.byteOffset, expected.length));
}

describe('checkpoint', () => {
  it('gives bit-identical loss and gradients, with dropout replayed in the recomputation', async () => {
    for (const backend of backendsUnderTest()) {
      const plain = await run(backend, 3, 0.25, false);
      const ckpt = await run(backend, 3, 0.25, true);
      expectBitIdentical(ckpt.loss, plain.loss, `${backend} loss`);
      ckpt.grads.forEach((g, i) => expectBitIdentical(g, plain.grads[i], `${backend} grad ${i}`));
      // The replay is what makes them equal: recomputing with fresh masks differs.
      const fresh = await run(backend, 3, 0.25, true, false);
      expect(fresh.loss).toEqual(plain.loss);
      expect(fresh.grads[0]).not.toEqual(plain.grads[0]);
    }
  });

  it('matches a float64 reference (one block, no dropout)', async () => {
    const n = 4;
    const xs = randomArray(n * D, 1);
    const ss = randomArray(n * D, 2);
    const w1 = randomArray(D * D, 10, -0.5, 0.5);
    const w2 = randomArray(D * D, 11, -0.5, 0.5);
    // y = x + tanh(x w1) w2 with x = a * s; loss = sum(y).
    // dL/dh2 = 1 -> dL/dw2 = t^T 1, dL/dt = 1 w2^T, dL/du = dL/dt (1 - t^2),
    // dL/dw1 = x^T dL/du, dL/dx = 1 + dL/du w1^T, dL/ds = a * dL/dx.
    const x = Array.from(xs, (v, i) => v * ss[i]);
    const t = new Float64Array(n * D);
    for (let r = 0; r < n; r++) for (let c = 0; c < D; c++) {
      let u = 0;
      for (let k = 0; k < D; k++) u += x[r * D + k] * w1[k * D + c];
      t[r * D + c] = Math.tanh(u);
    }
    const dw2 = new Float64Array(D * D);
    const du = new Float64Array(n * D);
    for (let r = 0; r < n; r++) for (let c = 0; c < D; c++) {
      let dt = 0;
      for (let k = 0; k < D; k++) dt += w2[c * D + k];
      du[r * D + c] = dt * (1 - t[r * D + c] ** 2);
    }
    for (let k = 0; k < D; k++) for (let c = 0; c < D; c++) for (let r = 0; r < n; r++) dw2[k * D + c] += t[r * D + k];
    const dw1 = new Float64Array(D * D);
    for (let k = 0; k < D; k++) for (let c = 0; c < D; c++) for (let r = 0; r < n; r++) dw1[k * D + c] += x[r * D + k] * du[r * D + c];
    const ds = new Float64Array(n * D);
    for (let r = 0; r < n; r++) for (let k = 0; k < D; k++) {
      let dx = 1;
      for (let c = 0; c < D; c++) dx += du[r * D + c] * w1[k * D + c];
      ds[r * D + k] = xs[r * D + k] * dx;
    }
    for (const backend of backendsUnderTest()) {
      const got = await run(backend, 1, 0, true);
      expectClose(got.grads[0], ds, { rtol: 1e-5, atol: 1e-6, label: `${backend} ds` });
      expectClose(got.grads[1], dw1, { rtol: 1e-5, atol: 1e-6, label: `${backend} dw1` });
      expectClose(got.grads[2], dw2, { rtol: 1e-5, atol: 1e-6, label: `${backend} dw2` });
    }
  });

  it('keeps fewer activation bytes between forward and backward', async () => {
    for (const backend of backendsUnderTest()) {
      const peaks: number[] = [];
      for (const ckpt of [false, true]) {
        const w = tensor(randomArray(64 * 64, 3, -0.1, 0.1), [64, 64], { backend, requiresGrad: true });
        const x0 = tensor(randomArray(32 * 64, 4), [32, 64], { backend });
        // Four tanh(h w) steps: each saves its [32, 64] output for backward.
        const f = (h: Tensor) =>
          T.tidy(() => {
            let y = h;
            for (let i = 0; i < 4; i++) y = T.tanh(T.matmul(y, w));
            return y;
          });
        T.flush();
        resetPeakMemory(backend);
        const loss = T.tidy(() => {
          let x = x0;
          for (let l = 0; l < 6; l++) x = ckpt ? checkpoint(([h]) => f(h), [x]) : f(x);
          return T.sum(x);
        });
        loss.backward();
        peaks.push(memory(backend).peakBytesByTag.activations);
        for (const t of [loss, w, x0]) t.dispose();
      }
      // Without: 6 layers x 4 saved [32, 64] tensors (plus backward's temporaries); with:
      // the 6 layer inputs and one layer's recomputation at a time.
      expect(peaks[1] / peaks[0], `${backend} peak activations ${peaks[1]} / ${peaks[0]}`).toBeLessThan(0.6);
    }
  });

  it('refuses a captured tensor that has a graph, leaving nothing allocated', () => {
    for (const backend of backendsUnderTest()) {
      const w = tensor(randomArray(D * D, 5), [D, D], { backend, requiresGrad: true });
      const x = tensor(randomArray(D * D, 6), [D, D], { backend });
      const before = memory(backend).liveTensors;
      T.tidy(() => {
        const outside = T.mul(w, w);
        expect(() => checkpoint(([h]) => T.add(h, outside), [x], { name: 'layer 3' })).toThrow(/layer 3: Add inside the checkpointed function reads tensor #\d+ \[8,8\] f32, which requires grad/);
      });
      expect(memory(backend).liveTensors).toBe(before);
      for (const t of [w, x]) t.dispose();
    }
  });

  it('refuses a function that returns an input or no tensor', () => {
    for (const backend of backendsUnderTest()) {
      const x = tensor(randomArray(4, 8), [4], { backend, requiresGrad: true });
      expect(() => checkpoint(([h]) => h, [x])).toThrow(/checkpoint: the checkpointed function returned one of its inputs/);
      expect(() => checkpoint(() => [T.neg(x)] as unknown as Tensor, [x])).toThrow(/checkpoint: the checkpointed function must return a tensor, got object/);
      x.dispose();
    }
  });

  it('only runs the function under noGrad (nothing recorded)', () => {
    for (const backend of backendsUnderTest()) {
      const x = tensor(randomArray(4, 9), [4], { backend, requiresGrad: true });
      const y = T.noGrad(() => checkpoint(([h]) => T.neg(h), [x]));
      expect(y.requiresGrad).toBe(false);
      for (const t of [x, y]) t.dispose();
    }
  });
});
