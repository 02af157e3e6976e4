/**
 * Every built-in fused op against its composite definition (written with primitives):
 * outputs and gradients, on every backend under test, in f32, and on cpu in f64 where
 * the two must agree to rounding.
 */
import { ATTENTION_MASKED_SCORE, type FusedOpName, type OpAttrs, type Tensor, add, square } from '@webpeft/tensor';
import { registerComposite, registerKernel, runComposite, runOp } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, it } from 'vitest';
import { type HostInput, awayFromZero, gradsOn, runOn, toF64, uniform } from './conformance.js';

beforeAll(async () => {
  await initBackends();
});

interface Case<K extends FusedOpName = FusedOpName> {
  op: K;
  attrs: OpAttrs[K];
  inputs: HostInput[];
  /** Inputs that get no gradient (labels). */
  constant?: number[];
  /** Whether gradients through the op are compared too (the forward fused ops). */
  grads: boolean;
}

const labels: HostInput = { data: Int32Array.from([3, -100, 0, 10, 7, -100]), shape: [6] };

function cases(): Case[] {
  const rows = (seed: number) => uniform([5, 24], seed, -3, 3);
  const list: Case[] = [
    { op: 'Gelu', attrs: {}, inputs: [uniform([3, 17], 1, -4, 4)], grads: true },
    { op: 'GeluTanh', attrs: {}, inputs: [uniform([3, 17], 2, -4, 4)], grads: true },
    { op: 'Silu', attrs: {}, inputs: [uniform([3, 17], 3, -6, 6)], grads: true },
    { op: 'GeluGrad', attrs: {}, inputs: [uniform([3, 17], 30), uniform([3, 17], 31, -4, 4)], grads: false },
    { op: 'GeluTanhGrad', attrs: {}, inputs: [uniform([3, 17], 32), uniform([3, 17], 33, -4, 4)], grads: false },
    { op: 'SiluGrad', attrs: {}, inputs: [uniform([3, 17], 34), uniform([3, 17], 35, -6, 6)], grads: false },
    { op: 'Softmax', attrs: {}, inputs: [uniform([4, 33], 4, -5, 5)], grads: true },
    { op: 'LogSoftmax', attrs: {}, inputs: [uniform([4, 33], 5, -5, 5)], grads: true },
    { op: 'SoftmaxGrad', attrs: {}, inputs: [uniform([4, 33], 6), awayFromZero([4, 33], 7, 0.01, 0.2)], grads: false },
    { op: 'LogSoftmaxGrad', attrs: {}, inputs: [uniform([4, 33], 8), uniform([4, 33], 9, -6, -1)], grads: false },
    { op: 'CrossEntropy', attrs: { ignoreIndex: -100 }, inputs: [uniform([6, 11], 10, -4, 4), labels], constant: [1], grads: true },
    { op: 'CrossEntropyGrad', attrs: { ignoreIndex: -100 }, inputs: [uniform([6], 11), uniform([6, 11], 12, -4, 4), labels], grads: false },
    // Chunks of 4 over 11 classes (the last one 3 wide); without and with a bias.
    { op: 'LinearCrossEntropyStats', attrs: { ignoreIndex: -100, chunkSize: 4 }, inputs: [uniform([6, 5], 30, -2, 2), uniform([11, 5], 31, -2, 2), labels], grads: false },
    { op: 'LinearCrossEntropyStats', attrs: { ignoreIndex: -100, chunkSize: 4 }, inputs: [uniform([6, 5], 32, -2, 2), uniform([11, 5], 33, -2, 2), labels, uniform([11], 34)], grads: false },
    { op: 'LayerNorm', attrs: { eps: 1e-5 }, inputs: [rows(13), uniform([24], 14), uniform([24], 15)], grads: true },
    { op: 'LayerNormGrad', attrs: { eps: 1e-5 }, inputs: [uniform([5, 24], 16), rows(17), uniform([24], 18)], grads: false },
    { op: 'LayerNormWeightGrad', attrs: { eps: 1e-5 }, inputs: [uniform([5, 24], 36), rows(37)], grads: false },
    // Wider than one workgroup's 256 columns, over 3-D rows: every column tile recomputes the statistics.
    { op: 'LayerNormWeightGrad', attrs: { eps: 1e-5 }, inputs: [uniform([2, 3, 300], 38), uniform([2, 3, 300], 39, -3, 3)], grads: false },
    { op: 'RmsNorm', attrs: { eps: 1e-6 }, inputs: [rows(19), uniform([24], 20)], grads: true },
    { op: 'RmsNormWeightGrad', attrs: { eps: 1e-6 }, inputs: [uniform([5, 24], 40), rows(41)], grads: false },
    { op: 'RmsNormWeightGrad', attrs: { eps: 1e-6 }, inputs: [uniform([7, 270], 42), uniform([7, 270], 43, -3, 3)], grads: false },
    { op: 'RmsNormGrad', attrs: { eps: 1e-6 }, inputs: [uniform([5, 24], 21), rows(22), uniform([24], 23)], grads: false },
    { op: 'MatMulAdd', attrs: { transposeA: false, transposeB: false, alpha: 1 }, inputs: [uniform([2, 8, 12], 44), uniform([12, 16], 45), uniform([16], 46)], grads: true },
    { op: 'MatMulAdd', attrs: { transposeA: false, transposeB: true, alpha: 0.37 }, inputs: [uniform([5, 7], 47), uniform([9, 7], 48), uniform([5, 9], 49)], grads: true },
    { op: 'MatMulAdd', attrs: { transposeA: true, transposeB: false, alpha: -1.5 }, inputs: [uniform([6, 5], 50), uniform([6, 3], 51)], grads: true },
    { op: 'BinaryScalar', attrs: { op: 'Add', value: 1.75, scalarFirst: false }, inputs: [uniform([3, 17], 24)], grads: true },
    { op: 'BinaryScalar', attrs: { op: 'Sub', value: -0.6, scalarFirst: true }, inputs: [uniform([3, 17], 25)], grads: true },
    { op: 'BinaryScalar', attrs: { op: 'Mul', value: 0.37, scalarFirst: true }, inputs: [uniform([3, 17], 26)], grads: true },
    { op: 'BinaryScalar', attrs: { op: 'Div', value: -3.1, scalarFirst: false }, inputs: [uniform([3, 17], 27)], grads: true },
    { op: 'BinaryScalar', attrs: { op: 'GreaterEqual', value: 0.1, scalarFirst: false }, inputs: [uniform([3, 17], 28)], grads: false },
    { op: 'BinaryScalar', attrs: { op: 'Less', value: 0.2, scalarFirst: true }, inputs: [uniform([3, 17], 29)], grads: false },
    // Memory-efficient attention: GQA 4:2, causal over 2 past keys, a key-padding bias
    // (batch 1's first three keys hidden: its first query sees no key at all).
    { op: 'FusedAttention', attrs: { scale: 0.4, causal: true }, inputs: [uniform([2, 4, 5, 8], 32, -2, 2), uniform([2, 2, 7, 8], 33, -2, 2), uniform([2, 2, 7, 8], 34), keyPadding], constant: [3], grads: true },
    // LLaMA fusions: SwiGLU; RoPE on [B, T, H, Dh] heads with shared and per-row tables (constants).
    { op: 'SwiGLU', attrs: {}, inputs: [uniform([3, 17], 52, -6, 6), uniform([3, 17], 53)], grads: true },
    { op: 'Rope', attrs: {}, inputs: [uniform([2, 3, 2, 6], 54, -2, 2), uniform([3, 6], 55), uniform([3, 6], 56)], constant: [1, 2], grads: true },
    { op: 'Rope', attrs: {}, inputs: [uniform([2, 3, 4, 6], 57, -2, 2), uniform([2, 3, 6], 58), uniform([2, 3, 6], 59)], constant: [1, 2], grads: true },
    { op: 'RopeGrad', attrs: {}, inputs: [uniform([2, 4, 3, 6], 60), uniform([2, 3, 6], 61), uniform([2, 3, 6], 62)], grads: false },
  ];
  return list;
}

const keyPadding: HostInput = { data: Float32Array.from({ length: 14 }, (_, i) => (i === 2 || (i >= 7 && i < 10) ? ATTENTION_MASKED_SCORE : 0)), shape: [2, 1, 1, 7] };

const fused = (c: Case) => (...xs: Tensor[]) => runOp(c.op, xs, c.attrs);
const composite = (c: Case) => (...xs: Tensor[]) => runComposite(c.op, xs, c.attrs);

async function compare(c: Case, backend: 'cpu' | 'webgpu', inputs: HostInput[], tol: { rtol: number; atol: number }): Promise<void> {
  const label = `${c.op} on ${backend}${inputs[0].data instanceof Float64Array ? ' (f64)' : ''}`;
  const [a] = await runOn(backend, fused(c), inputs);
  const [b] = await runOn(backend, composite(c), inputs);
  expectClose(a.values, b.values, { ...tol, label: `${label}: fused kernel vs composite` });
  if (!c.grads) return;
  const ga = await gradsOn(backend, fused(c), inputs, c.constant);
  const gb = await gradsOn(backend, composite(c), inputs, c.constant);
  ga.forEach((g, i) => {
    if (g) expectClose(g, gb[i]!, { ...tol, label: `${label}: gradient of input ${i}` });
  });
}

describe('fused ops equal their composite definitions', () => {
  for (const c of cases()) {
    const variant = c.op === 'BinaryScalar' ? ` ${JSON.stringify(c.attrs)}` : c.op === 'LinearCrossEntropyStats' && c.inputs.length === 4 ? ' with bias' : c.op === 'Rope' ? ` tables [${c.inputs[1].shape.join(', ')}]` : '';
    it(`${c.op}${variant}: forward${c.grads ? ' and gradients' : ''}`, async () => {
      for (const backend of backendsUnderTest()) {
        if (backend === 'meta') continue;
        await compare(c, backend, c.inputs, { rtol: 1e-4, atol: 1e-5 });
      }
      // In float64 the kernel and the composite differ only by rounding.
      await compare(c, 'cpu', c.inputs.map(toF64), { rtol: 1e-9, atol: 1e-12 });
    });
  }
});

declare module '@webpeft/tensor/kernel' {
  interface OpAttrs {
    /** Test op: `x * x + shift`, a cpu kernel only, and a composite. */
    TestSquareShift: { shift: number };
  }
}

describe('a fused op without a kernel on a backend', () => {
  it('runs its composite there, with gradients through the primitives; kernels compose kernels with ctx.run', async () => {
    registerComposite('TestSquareShift', ([x], { shift }) => add(square(x), shift));
    // The cpu kernel composes two kernels (Square, then Add with a Fill) instead of calling ops.
    registerKernel('TestSquareShift', 'cpu', ([x], { shift }, ctx) => {
      const sq = ctx.run('Square', [x], {});
      const s = ctx.run('Fill', [], { shape: [], value: shift, dtype: x.dtype });
      const out = ctx.run('Add', [sq, s], {});
      sq.dispose();
      s.dispose();
      return out;
    });
    const x = uniform([4, 6], 31, -2, 2);
    const ref = Array.from(x.data, (v) => v * v + 0.5);
    const op = (t: Tensor) => runOp('TestSquareShift', [t], { shift: 0.5 });
    for (const backend of backendsUnderTest()) {
      const [y] = await runOn(backend, op, [x]);
      expectClose(y.values, ref, { rtol: 1e-6, atol: 1e-6, label: `TestSquareShift on ${backend}` });
    }
    // Only the composite records a graph (the cpu kernel has no gradient registered).
    if (backendsUnderTest().includes('webgpu')) {
      const [g] = await gradsOn('webgpu', op, [x]);
      const w = Array.from({ length: x.data.length }, (_, i) => Math.cos(1.3 * i + 0.7));
      expectClose(g!, Array.from(x.data, (v, i) => 2 * v * w[i]), { rtol: 1e-5, atol: 1e-6, label: 'composite gradient on webgpu' });
    }
  });
});
