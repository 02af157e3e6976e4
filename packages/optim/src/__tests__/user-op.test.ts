/**
 * A user-defined op written outside the tensor package through its public kernel API
 * only (no casts, no runtime internals): declared by module augmentation, with a cpu
 * kernel, a WGSL kernel and a gradient written with ops.
 */
import { type Tensor, mul, scalarLike, sigmoid, sum, tensor, tidy } from '@webpeft/tensor';
import { Uniforms, elementMain, grid, program, registerGradient, registerKernel, runOp, storageBindings } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, gradcheck, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

/** Attributes of the test's op: softplus with a sharpness `beta`. */
interface ScaledSoftplusAttrs {
  beta: number;
}

declare module '@webpeft/tensor/kernel' {
  interface OpAttrs {
    /** `log(1 + exp(beta * x)) / beta`, elementwise. */
    ScaledSoftplus: ScaledSoftplusAttrs;
  }
}

/** Past this `beta * x`, softplus is `x` to float precision (and exp would overflow sooner or later). */
const LINEAR_FROM = 20;

function registerScaledSoftplus(): void {
  registerKernel('ScaledSoftplus', 'cpu', ([x], { beta }, ctx) => {
    const out = ctx.output(x.shape, x.dtype, 'ScaledSoftplus');
    const xs = ctx.data(x);
    const os = ctx.data(out);
    for (let i = 0; i < xs.length; i++) {
      const bx = beta * xs[i];
      os[i] = (bx > LINEAR_FROM ? bx : Math.log1p(Math.exp(bx))) / beta;
    }
    return out;
  });
  registerKernel('ScaledSoftplus', 'webgpu', ([x], { beta }, ctx) => {
    const out = ctx.output(x.shape, 'f32', 'ScaledSoftplus');
    const u = new Uniforms().u32('n', x.size).f32('beta', beta);
    const prog = program('test/scaled-softplus', 1, 1, () => `
${storageBindings([['x', 'f32']], [['out', 'f32']])}
${u.declaration(2)}
${elementMain(64, 'u.n')}
  let bx = u.beta * x[i];
  out[i] = select(log(1.0 + exp(bx)), bx, bx > ${LINEAR_FROM}.0) / u.beta;
}`);
    ctx.dispatch(prog, [x], [out], u, grid(x.size, 64));
    return out;
  });
  // d/dx softplus(beta x) / beta = sigmoid(beta x), written with ops so every backend has it.
  registerGradient('ScaledSoftplus', {
    saveInputs: true,
    saveOutput: false,
    grad(dy, { inputs: [x], attrs: { beta } }) {
      return [mul(dy, sigmoid(mul(x, scalarLike(x, beta))))];
    },
  });
}

function scaledSoftplus(x: Tensor, beta: number): Tensor {
  return runOp('ScaledSoftplus', [x], { beta });
}

/** Float64 reference of the op. */
function reference(x: number, beta: number): number {
  const bx = beta * x;
  return bx > LINEAR_FROM ? x : Math.log1p(Math.exp(bx)) / beta;
}

beforeAll(async () => {
  await initBackends();
  registerScaledSoftplus();
});

describe('a user-defined op through the public kernel API', () => {
  const beta = 1.5;
  const n = 257;

  it('forward matches a float64 reference on every backend', async () => {
    const xd = randomArray(n, 41, -3, 3);
    xd[0] = 30; // the linear branch
    const expected = Float64Array.from(xd, (v) => reference(v, beta));
    for (const backend of backendsUnderTest()) {
      const x = tensor(xd, [n], { backend });
      const y = scaledSoftplus(x, beta);
      expect(y.shape).toEqual([n]);
      expectClose(await y.data(), expected, { rtol: 1e-5, atol: 1e-6, label: `${backend} forward` });
      x.dispose();
      y.dispose();
    }
  });

  it('the gradient matches finite differences of the float64 reference on every backend', async () => {
    const xd = randomArray(n, 42, -3, 3);
    const wd = randomArray(n, 43, -1, 1);
    const h = 1e-6;
    // d/dx_i sum(w * f(x)) by central differences of the reference, in float64.
    const expected = Float64Array.from(xd, (v, i) => (wd[i] * (reference(v + h, beta) - reference(v - h, beta))) / (2 * h));
    for (const backend of backendsUnderTest()) {
      const x = tensor(xd, [n], { backend, requiresGrad: true });
      const w = tensor(wd, [n], { backend });
      const loss = tidy(() => sum(mul(scaledSoftplus(x, beta), w)));
      loss.backward();
      expectClose(await x.grad!.data(), expected, { rtol: 1e-4, atol: 1e-6, label: `${backend} gradient` });
      for (const t of [x, w, loss]) t.dispose();
    }
  });

  it('gradcheck in float64 on cpu', async () => {
    await gradcheck((x) => scaledSoftplus(x, beta), [{ data: randomArray(12, 44, -3, 3, true) as Float64Array, shape: [3, 4] }], { label: 'ScaledSoftplus' });
  });
});
