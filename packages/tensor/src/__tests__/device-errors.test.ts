/**
 * Nothing silent on the device: out-of-range indices flagged by the webgpu kernels
 * throw the same `IndexError` as the cpu kernels at (or before) the next readback, and
 * a failed submit names its op(s) and invalidates every tensor it wrote.
 */
import * as T from '@webpeft/tensor';
import { GpuValidationError, IndexError, InvalidTensorError, type Tensor, getBackend } from '@webpeft/tensor';
import { Uniforms, elementMain, grid, program, registerKernel, runOp, storageBindings } from '@webpeft/tensor/kernel';
import { backendsUnderTest, disposeAfterTest, initBackends, randomArray, randomInts } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

declare module '@webpeft/tensor/kernel' {
  interface OpAttrs {
    /** Test-only: a kernel dispatched with more workgroups than the device allows. */
    TestTooManyWorkgroups: Record<string, never>;
    /** Test-only: a kernel whose WGSL declares a binding the layout does not have. */
    TestBadBinding: Record<string, never>;
  }
}

function registerBrokenKernels(): void {
  registerKernel('TestTooManyWorkgroups', 'webgpu', ([x], _a, ctx) => {
    const out = ctx.output(x.shape, 'f32', 'TestTooManyWorkgroups');
    const u = new Uniforms().u32('n', x.size);
    const prog = program('test/too-many-workgroups', 1, 1, () => `${storageBindings([['x', 'f32']], [['out', 'f32']])}
${u.declaration(2)}
${elementMain(64, 'u.n')}
  out[i] = x[i];
}`);
    ctx.dispatch(prog, [x], [out], u, [ctx.limits.maxComputeWorkgroupsPerDimension + 1, 1, 1]);
    return out;
  });
  registerKernel('TestBadBinding', 'webgpu', ([x], _a, ctx) => {
    const out = ctx.output(x.shape, 'f32', 'TestBadBinding');
    const u = new Uniforms().u32('n', x.size);
    const prog = program('test/bad-binding', 1, 1, () => `${storageBindings([['x', 'f32']], [['out', 'f32']])}
@group(0) @binding(7) var<storage, read_write> extra: array<f32>;
${u.declaration(2)}
${elementMain(64, 'u.n')}
  out[i] = x[i] + extra[0];
}`);
    ctx.dispatch(prog, [x], [out], u, grid(x.size, 64));
    return out;
  });
}

beforeAll(async () => {
  await initBackends();
  registerBrokenKernels();
});

/** Runs `fn` on cpu (which throws at the call) and returns the error. */
function cpuError(fn: () => Tensor): unknown {
  try {
    fn().dispose();
  } catch (e) {
    return e;
  }
  throw new Error('expected the cpu kernel to throw');
}

/** Awaits `p` and returns what it rejected with. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

function onBoth(rows: number, cols: number, seed: number) {
  const data = randomArray(rows * cols, seed);
  return {
    cpu: disposeAfterTest(T.tensor(data, [rows, cols], { backend: 'cpu' })),
    gpu: disposeAfterTest(T.tensor(data, [rows, cols], { backend: 'webgpu' })),
    data,
  };
}

function ids(values: readonly number[], backend: 'cpu' | 'webgpu'): Tensor {
  return disposeAfterTest(T.tensor(Int32Array.from(values), [values.length], { dtype: 'i32', backend }));
}

describe('device-side index checks (webgpu) and the cpu IndexError', () => {
  it('gather: an index >= rows or < 0 throws IndexError at the next readback, same message as cpu', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { cpu, gpu } = onBoth(7, 3, 11);
    for (const bad of [7, 12, -1]) {
      const good = Array.from(randomInts(5, 7, 20 + bad));
      const idx = [...good.slice(0, 2), bad, ...good.slice(2)];
      const ec = cpuError(() => T.gather(cpu, ids(idx, 'cpu')));
      const out = T.gather(gpu, ids(idx, 'webgpu'));
      const eg = await rejection(out.data());
      out.dispose();
      expect(ec).toBeInstanceOf(IndexError);
      expect(eg).toBeInstanceOf(IndexError);
      const e = eg as IndexError;
      expect([e.op, e.index, e.position, e.limit, e.shape]).toEqual(['gather', bad, 2, 7, [7, 3]]);
      expect(e.message).toBe((ec as IndexError).message);
      expect(e.message).toBe(`gather: index ${bad} at position 2 is out of range for 7 rows (input [7,3])`);
    }
  });

  it('the flag is raised by an unrelated readback, clears, and a later good gather is exact', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { gpu, data } = onBoth(5, 4, 12);
    const bad = T.gather(gpu, ids([1, 9, 2], 'webgpu'));
    const other = T.mul(gpu, disposeAfterTest(T.scalarLike(gpu, 2)));
    const e = await rejection(other.data());
    expect(e).toBeInstanceOf(IndexError);
    expect((e as IndexError).index).toBe(9);
    // The bad op's own output is marked invalid instead of reading zeros.
    expect(await rejection(bad.data())).toBeInstanceOf(InvalidTensorError);
    bad.dispose();
    // Flags are cleared at the readback: the next read of `other` succeeds and is exact.
    expect(Array.from(await other.data())).toEqual(Array.from(data, (v) => Math.fround(v * 2)));
    other.dispose();
    const idx = Array.from(randomInts(6, 5, 13));
    const ok = T.gather(gpu, ids(idx, 'webgpu'));
    const want = idx.flatMap((r) => Array.from(data.subarray(r * 4, r * 4 + 4)));
    expect(Array.from(await ok.data())).toEqual(want);
    ok.dispose();
  });

  it('sync() also raises a pending IndexError', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { gpu } = onBoth(3, 2, 14);
    const bad = T.gather(gpu, ids([0, 3], 'webgpu'));
    const e = await rejection(T.sync('webgpu'));
    expect(e).toBeInstanceOf(IndexError);
    expect((e as IndexError).message).toBe('gather: index 3 at position 1 is out of range for 3 rows (input [3,2])');
    bad.dispose();
  });

  it('crossEntropy: a label >= classes (not the ignore index) throws IndexError, same message as cpu', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    // 5 and 80 classes: the thread-per-row and the workgroup-per-row kernels.
    for (const classes of [5, 80]) {
      const { cpu, gpu } = onBoth(4, classes, 15 + classes);
      const labels = [1, -100, classes, 0];
      const ec = cpuError(() => T.crossEntropy(cpu, ids(labels, 'cpu')));
      const loss = T.crossEntropy(gpu, ids(labels, 'webgpu'));
      const eg = await rejection(loss.data());
      loss.dispose();
      expect(ec).toBeInstanceOf(IndexError);
      expect(eg).toBeInstanceOf(IndexError);
      expect((eg as IndexError).message).toBe((ec as IndexError).message);
      expect((eg as IndexError).message).toBe(`crossEntropy: index ${classes} at position 2 is out of range for ${classes} classes (input [4,${classes}]); ignoreIndex -100`);
    }
  });

  it('scatterAdd: an index >= numRows throws IndexError on both backends', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { cpu, gpu } = onBoth(3, 2, 16);
    const idx = [2, 0, 6];
    const ec = cpuError(() => T.scatterAdd(cpu, ids(idx, 'cpu'), 4));
    const out = T.scatterAdd(gpu, ids(idx, 'webgpu'), 4);
    const eg = await rejection(out.data());
    out.dispose();
    expect(eg).toBeInstanceOf(IndexError);
    expect((eg as IndexError).message).toBe((ec as IndexError).message);
    expect((eg as IndexError).message).toBe('scatterAdd: index 6 at position 2 is out of range for 4 rows (input [4,2])');
  });

  it('an embedding lookup with a token id >= vocab throws before any value is read', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { gpu } = onBoth(10, 8, 17);
    const tokens = disposeAfterTest(T.tensor(Int32Array.from([3, 4, 10, 1, 2, 0]), [2, 3], { dtype: 'i32', backend: 'webgpu' }));
    const h = T.gather(gpu, tokens);
    const s = T.sum(h);
    const e = await rejection(s.data());
    expect(e).toBeInstanceOf(IndexError);
    expect((e as IndexError).position).toBe(2);
    // A result computed from a flagged tensor is invalid too, not a wrong finite value.
    expect(await rejection(s.data())).toBeInstanceOf(InvalidTensorError);
    h.dispose();
    s.dispose();
  });
});

describe('failed submits name their op and invalidate the batch', () => {
  it('a dispatch over the workgroup limit names its op; another tensor of the batch throws on read', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { gpu } = onBoth(4, 4, 18);
    const before = T.add(gpu, disposeAfterTest(T.scalarLike(gpu, 1)));
    const broken = runOp('TestTooManyWorkgroups', [gpu], {});
    const after = T.mul(gpu, gpu);
    const e = await rejection(before.data());
    expect(e).toBeInstanceOf(GpuValidationError);
    expect((e as Error).message).toContain('test/too-many-workgroups');
    for (const t of [before, broken, after]) {
      const r = await rejection(t.data());
      expect(r).toBeInstanceOf(InvalidTensorError);
      expect((r as Error).message).toContain('test/too-many-workgroups');
      t.dispose();
    }
    // The device recovers: a new batch computes exact values.
    const ok = T.add(gpu, gpu);
    expect(Array.from(await ok.data())).toEqual(Array.from(await gpu.data(), (v) => v + v));
    ok.dispose();
  });

  it('a tensor computed in a later submit from a failed one throws on read, not a stale value', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { gpu } = onBoth(2, 3, 20);
    const broken = runOp('TestTooManyWorkgroups', [gpu], {});
    T.flush();
    const derived = T.mul(broken, broken);
    const e = await rejection(derived.data());
    expect(e).toBeInstanceOf(GpuValidationError);
    const r = await rejection(derived.data());
    expect(r).toBeInstanceOf(InvalidTensorError);
    expect((r as Error).message).toContain('written after a submit that failed');
    broken.dispose();
    derived.dispose();
  });

  it('in debug mode a bad binding is named as the one op, and the ops around it still run', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const { gpu, data } = onBoth(3, 5, 19);
    T.setDebug(true);
    try {
      expect(getBackend('webgpu').debug).toBe(true);
      const before = T.add(gpu, disposeAfterTest(T.scalarLike(gpu, 1)));
      const broken = runOp('TestBadBinding', [gpu], {});
      const e = await rejection(broken.data());
      broken.dispose();
      expect(e).toBeInstanceOf(GpuValidationError);
      expect((e as Error).message).toMatch(/^webgpu: op test\/bad-binding: /);
      // Its own submit: the op before it is unaffected.
      expect(Array.from(await before.data())).toEqual(Array.from(data, (v) => Math.fround(v + 1)));
      before.dispose();
    } finally {
      T.setDebug(false);
    }
  });
});
