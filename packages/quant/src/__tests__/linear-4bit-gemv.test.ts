/**
 * The memory-bound 4-bit dequant-matmul (1-64 rows) on webgpu against the cpu reference
 * (dequantize to f32, float64-accumulated matmul): forward with and without bias and the
 * input gradient through `Linear4bit`'s backward, on odd shapes (K not a multiple of 8,
 * N not a multiple of the workgroup's 16 outputs), blocksize 64 and 32, plain and double
 * quantized absmax, NF4 and FP4, f32 compute, every row bucket, with the subgroup
 * reduction and with the workgroup-memory one.
 */
import { type BackendName, type Tensor, f16BitsToF32, tensor } from '@webpeft/tensor';
import { runOp } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Linear4bitAttrs, type QuantType, quantize4bit, registerLinear4bitOps, weightInputs } from '../index.js';
import { LINEAR4BIT_GEMV_MAX_ROWS, setLinear4bitGemvKernel, setLinear4bitGemvMaxRows, setLinear4bitSubgroups } from '../ops/linear-4bit-gemv.js';
import { setLinear4bitLanesSubgroups } from '../ops/linear-4bit-gemv-lanes.js';
import { uploadCodeTables } from './code-cache.js';
import type { Linear4bitCase } from './four-bit-fixtures.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
  registerLinear4bitOps();
  // Every row bucket takes the kernel here, whatever the adapter's default.
  setLinear4bitGemvMaxRows(LINEAR4BIT_GEMV_MAX_ROWS);
});
afterAll(() => {
  setLinear4bitGemvKernel('auto');
  setLinear4bitSubgroups(true);
  setLinear4bitGemvMaxRows(null);
});

let seed = 900;

/** y, dx (through backward) and the `Linear4bitGradInput` op on its own, as f32 values. */
type CaseData = Record<'w' | 'x' | 'dy' | 'b', ReturnType<typeof randomArray>>;

async function runCase(backend: BackendName, c: Linear4bitCase, data: CaseData) {
  const w = tensor(data.w, [c.out, c.inF], { backend });
  const { packed, state } = await quantize4bit(w, { blocksize: c.blocksize, doubleQuant: c.nested, quantType: c.quantType });
  const weight = weightInputs({ packed, quantState: state });
  const attrs: Linear4bitAttrs = { inFeatures: c.inF, outFeatures: c.out, blocksize: c.blocksize, nested: c.nested, nestedBlocksize: state.nested?.blocksize ?? 0 };
  const x = tensor(data.x, [c.rows, c.inF], { backend, dtype: c.dtype, requiresGrad: true });
  const dy = tensor(data.dy, [c.rows, c.out], { backend, dtype: c.dtype });
  const bias = c.bias ? tensor(data.b, [c.out], { backend, dtype: c.dtype }) : null;
  const y = bias ? runOp('Linear4bit', [x, ...weight, bias], { ...attrs, bias: true }) : runOp('Linear4bit', [x, ...weight], attrs);
  y.backward(dy);
  const dx = runOp('Linear4bitGradInput', [dy, ...weight], attrs);
  const f32 = async (t: Tensor) => {
    const d = await t.data();
    return c.dtype === 'f16' ? Float32Array.from(d as Uint16Array, f16BitsToF32) : Float32Array.from(d as Float32Array);
  };
  const res = { y: await f32(y), dxBackward: await f32(x.grad!), dx: await f32(dx), packed: (await packed.data()) as Uint32Array };
  for (const t of [w, packed, x.grad!, x, dy, y, dx, ...(bias ? [bias] : [])]) t.dispose();
  state.dispose();
  return res;
}

function cases(): Linear4bitCase[] {
  const base = { blocksize: 64, nested: true, quantType: 'nf4' as QuantType, bias: true, dtype: 'f32' as const };
  return [
    // K % 8 == 0: the word-at-a-time forward; rows cover the buckets 1, 8, 16, 64.
    { ...base, out: 37, inF: 136, rows: 1, nested: false },
    { ...base, out: 37, inF: 136, rows: 5, quantType: 'fp4' },
    { ...base, out: 37, inF: 136, rows: 16, bias: false },
    { ...base, out: 37, inF: 136, rows: 64 },
    // Odd K: rows of W straddle words and absmax blocks; K longer than one activation tile.
    { ...base, out: 21, inF: 77, rows: 3, blocksize: 32, nested: false },
    { ...base, out: 19, inF: 600, rows: 40, blocksize: 128 },
  ];
}

/** Tolerance of a sum of k products of magnitude <= 1 in f32 against a float64 sum. */
const f32Close = { rtol: 1e-4, atol: 1e-5 };

/** Runs case `c` on fresh seeded data on both backends and compares forward, input gradient and `Linear4bitGradInput`. */
async function expectMatchesCpu(c: Linear4bitCase, name: string): Promise<void> {
  const data = {
    w: randomArray(c.out * c.inF, seed++, -1, 1),
    x: randomArray(c.rows * c.inF, seed++, -2, 2),
    dy: randomArray(c.rows * c.out, seed++, -1, 1),
    b: randomArray(c.out, seed++, -0.5, 0.5),
  };
  const cpu = await runCase('cpu', c, data);
  const gpu = await runCase('webgpu', c, data);
  // Both backends quantize to the same bytes, so the products compare the kernels alone.
  expect(Array.from(gpu.packed)).toEqual(Array.from(cpu.packed));
  expectClose(gpu.y, cpu.y, { ...f32Close, label: `${name} forward` });
  expectClose(gpu.dxBackward, cpu.dxBackward, { ...f32Close, label: `${name} dx through backward` });
  expectClose(gpu.dx, cpu.dx, { ...f32Close, label: `${name} Linear4bitGradInput` });
}

describe('Linear4bit memory-bound kernel (1-64 rows): webgpu vs the cpu reference', () => {
  for (const subgroups of [true, false]) {
    // The workgroup-memory reduction on two cases (each variant is a pipeline to compile).
    for (const c of subgroups ? cases() : cases().filter((c) => c.rows === 3 || c.rows === 64)) {
      const name = `${c.rows} rows, W [${c.out}, ${c.inF}], bs ${c.blocksize}, ${c.quantType}${c.nested ? ' nested' : ''}${c.bias ? ' + bias' : ''}, ${
        subgroups ? 'subgroup' : 'workgroup'
      } reduction`;
      it(name, { timeout: 600_000 }, async () => {
        if (!backendsUnderTest().includes('webgpu')) return;
        setLinear4bitSubgroups(subgroups);
        // The split kernel (GPUs); on a software adapter 'auto' would pick the lanes kernel.
        setLinear4bitGemvKernel('split');
        await expectMatchesCpu(c, name);
      });
    }
  }
});

describe('Linear4bit memory-bound lanes kernel (software adapters): webgpu vs the cpu reference', () => {
  const base = { blocksize: 64, nested: true, quantType: 'nf4' as QuantType, bias: true, dtype: 'f32' as const };
  const lanesCases: Linear4bitCase[] = [
    ...cases(),
    // N past one workgroup of 64 columns (and not a multiple of it); 16 rows, the software limit's bucket.
    { ...base, out: 131, inF: 40, rows: 16, quantType: 'fp4' },
    { ...base, out: 70, inF: 33, rows: 1, blocksize: 32, bias: false },
  ];
  // With subgroups (activations broadcast across lanes, where the adapter has them) on
  // every case, without on the aligned forward cases (K % 8 == 0, the only ones that use them).
  const runs = [...lanesCases.map((c) => ({ c, sg: true })), ...lanesCases.filter((c) => c.inF % 8 === 0).map((c) => ({ c, sg: false }))];
  for (const { c, sg } of runs) {
    const name = `${c.rows} rows, W [${c.out}, ${c.inF}], bs ${c.blocksize}, ${c.quantType}${c.nested ? ' nested' : ''}${c.bias ? ' + bias' : ''}, lanes${
      sg ? '' : ' without subgroups'
    }`;
    it(name, { timeout: 600_000 }, async () => {
      if (!backendsUnderTest().includes('webgpu')) return;
      setLinear4bitGemvKernel('lanes');
      setLinear4bitLanesSubgroups(sg);
      try {
        await expectMatchesCpu(c, name);
      } finally {
        setLinear4bitGemvKernel('auto');
        setLinear4bitLanesSubgroups(true);
      }
    });
  }
});
