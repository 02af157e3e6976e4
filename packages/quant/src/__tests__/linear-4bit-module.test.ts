import { Conv1D, Linear, Module } from '@webpeft/nn';
import { Linear4bit, dequantize4bit, dequantizeModel, quantizeModel, quantizeTargets } from '@webpeft/quant';
import { type Tensor, manualSeed, matmul, memory, noGrad, sum, tensor, tidy, transpose } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray, takeData } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { uploadCodeTables } from './code-cache.js';

/** A toy tree with HF-style names: a Linear, a GPT-2 Conv1D and an lm_head. */
class Toy extends Module {
  readonly proj: Linear;
  readonly c_fc: Conv1D;
  readonly lm_head: Linear;
  constructor(backend: 'cpu' | 'webgpu') {
    super();
    this.proj = this.registerModule('proj', new Linear(96, 40, { backend }));
    this.c_fc = this.registerModule('c_fc', new Conv1D(40, 72, { backend, initStd: 0.5 }));
    this.lm_head = this.registerModule('lm_head', new Linear(72, 10, { backend, bias: false }));
  }
  forward(x: Tensor): Tensor {
    // The layers' outputs in between are freed by the scope.
    return tidy(() => this.lm_head.forward(this.c_fc.forward(this.proj.forward(x))));
  }
}

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
});


describe('Linear4bit and quantizeModel', () => {
  // 5 and 40 rows take the memory-bound kernel (up to 64 rows); more the dequantize-then-tiled-matmul path.
  it.each([
    ['cpu', 5],
    ['webgpu', 5],
    ['webgpu', 40],
  ] as const)('matches dequantize + f32 matmul and only x gets a gradient (%s, %i rows)', async (backend, rows) => {
    if (!backendsUnderTest().includes(backend)) return;
    manualSeed(11);
    const linear = new Linear(70, 33, { backend });
    const q = await Linear4bit.fromLinear(linear, { quantType: 'nf4', doubleQuant: true, blockSize: 64 });
    const x = tensor(randomArray(rows * 70, 3), [rows, 70], { backend, requiresGrad: true });
    const y = q.forward(x);
    // Reference: the dequantized weight through a plain f32 matmul (W [out, in]).
    const w = dequantize4bit(q.packedWeight, q.quantState);
    const ref = noGrad(() => matmul(x, w, { transposeB: true }));
    const yData = await y.data();
    const refData = await ref.data();
    const bias = await linear.bias!.data();
    expectClose(yData, Array.from(refData, (v, i) => v + bias[i % 33]), { rtol: 1e-4, atol: 1e-5, label: 'forward' });
    const total = sum(y);
    total.backward();
    total.dispose();
    const dx = await x.grad!.data();
    const wData = await w.data();
    const expected = new Float64Array(rows * 70);
    for (let r = 0; r < rows; r++) for (let i = 0; i < 70; i++) for (let o = 0; o < 33; o++) expected[r * 70 + i] += wData[o * 70 + i];
    expectClose(dx, expected, { rtol: 1e-4, atol: 1e-5, label: 'input gradient' });
    expect(q.packedWeight.grad).toBeNull();
    for (const t of [x, y, w, ref]) t.dispose();
    linear.dispose();
    q.dispose();
  });

  it('quantizes every Linear and Conv1D but lm_head, frees the f32 weights and reports bytes', async () => {
    const backend = backendsUnderTest().includes('webgpu') ? 'webgpu' : 'cpu';
    manualSeed(5);
    const model = new Toy(backend);
    const x = tensor(randomArray(4 * 96, 9), [4, 96], { backend });
    const before = await takeData(noGrad(() => model.forward(x)));
    const paramsBefore = model.numParameters();
    const weightsBefore = memory(backend).bytesByTag.weights;
    const { report } = await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
    expect(report.layers).toEqual(['proj', 'c_fc']);
    expect(model.getSubmodule('proj')).toBeInstanceOf(Linear4bit);
    expect(model.getSubmodule('c_fc')).toBeInstanceOf(Linear4bit);
    expect(model.getSubmodule('lm_head')).toBeInstanceOf(Linear);
    expect(report.bytesBefore).toBe((96 * 40 + 40 * 72) * 4);
    // 4 bits per weight plus double-quantized constants: about 1/7.75 of f32.
    expect(report.bytesAfter).toBeLessThan(report.bytesBefore / 7);
    expect(memory(backend).bytesByTag.weights).toBe(weightsBefore - report.bytesBefore);
    // PEFT counts a 4-bit weight as the elements it represents.
    expect(model.numParameters()).toBe(paramsBefore);
    const after = await takeData(noGrad(() => model.forward(x)));
    // NF4 error on these activations stays within a few percent of their scale.
    let num = 0;
    let den = 0;
    for (let i = 0; i < before.length; i++) {
      num += (after[i] - before[i]) ** 2;
      den += before[i] ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(0.15);
    const c_fc = model.getSubmodule('c_fc') as Linear4bit;
    const deq = await takeData(c_fc.dequantizedWeight());
    dequantizeModel(model);
    const back = model.getSubmodule('c_fc') as Linear;
    expect(back).toBeInstanceOf(Linear);
    expectClose(await back.weight.data(), deq, { rtol: 0, atol: 0, label: 'dequantized weight' });
    const y = noGrad(() => model.forward(x));
    expectClose(await takeData(y), after, { rtol: 1e-4, atol: 1e-5, label: 'dequantized model output' });
    x.dispose();
    model.dispose();
  });

  it('skips a skipped module wrapped by an adapter (lm_head.base_layer) but not look-alike names', () => {
    /** PEFT's wrapper shape: the original layer lives at `<path>.base_layer`. */
    class Wrapped extends Module {
      readonly base_layer: Linear;
      constructor(inF: number, outF: number) {
        super();
        this.base_layer = this.registerModule('base_layer', new Linear(inF, outF, { backend: 'cpu' }));
      }
      forward(x: Tensor): Tensor {
        return this.base_layer.forward(x);
      }
    }
    class Tree extends Module {
      readonly proj: Wrapped;
      readonly my_lm_head: Linear;
      readonly lm_head: Wrapped;
      constructor() {
        super();
        this.proj = this.registerModule('proj', new Wrapped(8, 8));
        this.my_lm_head = this.registerModule('my_lm_head', new Linear(8, 8, { backend: 'cpu' }));
        this.lm_head = this.registerModule('lm_head', new Wrapped(8, 4));
      }
      forward(x: Tensor): Tensor {
        return this.lm_head.forward(this.my_lm_head.forward(this.proj.forward(x)));
      }
    }
    const tree = new Tree();
    expect(quantizeTargets(tree)).toEqual(['proj.base_layer', 'my_lm_head']);
    expect(quantizeTargets(tree, ['proj'])).toEqual(['my_lm_head', 'lm_head.base_layer']);
    tree.dispose();
  });

  it('loadWeight re-quantizes (merging into a 4-bit base)', async () => {
    const backend = backendsUnderTest().includes('webgpu') ? 'webgpu' : 'cpu';
    const linear = new Linear(64, 16, { backend, bias: false });
    const q = await Linear4bit.fromLinear(linear);
    const w = tensor(randomArray(16 * 64, 21, -2, 2), [16, 64], { backend });
    await q.loadWeight(w);
    const wt = tidy(() => transpose(transpose(w)));
    const deq = await takeData(q.dequantizedWeight());
    const src = await takeData(wt);
    let maxErr = 0;
    for (let i = 0; i < src.length; i++) maxErr = Math.max(maxErr, Math.abs(deq[i] - src[i]));
    // NF4's widest gap (between -1 and -0.696) halves to 0.152 of the block absmax (<= 2).
    expect(maxErr).toBeLessThanOrEqual(0.152 * 2 + 1e-6);
    for (const m of [w, linear, q]) m.dispose();
  });
});
