/**
 * The per-dispatch host structures: the uniform words (hand-written layout: arrays of 8
 * words first, then scalars in declaration order, padded to 4 words) and the bind-group
 * cache's keys (layout, uniform slot size, buffers in binding order).
 */
import { Uniforms } from '@webpeft/tensor/kernel';
import { describe, expect, it } from 'vitest';
import * as T from '@webpeft/tensor';
import { profile, tensor } from '@webpeft/tensor';
import { backendsUnderTest, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll } from 'vitest';
import { BindGroupCache } from '../backends/webgpu/bind-group-cache.js';
import { BufferHeap } from '../backends/webgpu/buffer-heap.js';

beforeAll(async () => {
  await initBackends();
});

const bitsOf = (f: number) => new Uint32Array(new Float32Array([f]).buffer)[0];

describe('Uniforms.data', () => {
  it('lays out arrays first, then scalars, with f32 bits and padding', () => {
    const u = new Uniforms().u32('n', 7).f32('scale', 0.3).arr('shape', [2, 3, 5]).i32('off', -2);
    expect([...u.data()]).toEqual([2, 3, 5, 0, 0, 0, 0, 0, 7, bitsOf(0.3), 0xfffffffe, 0]);
  });

  it('is four zero words when empty and pads a full row exactly', () => {
    expect([...new Uniforms().data()]).toEqual([0, 0, 0, 0]);
    expect([...new Uniforms().u32('a', 1).u32('b', 2).u32('c', 3).u32('d', 4).data()]).toEqual([1, 2, 3, 4]);
  });
});

describe('BindGroupCache', () => {
  // Stand-ins: the cache only compares these objects by identity.
  const layout = (n: number) => ({ label: `layout${n}` }) as unknown as GPUBindGroupLayout;
  const buffer = (n: number) => ({ buffer: { label: `buffer${n}` } as unknown as GPUBuffer });
  const group = (n: number) => ({ label: `group${n}` }) as unknown as GPUBindGroup;

  it('finds a stored group only under the same layout, slot size and buffers in order', () => {
    const cache = new BindGroupCache();
    const [l1, l2] = [layout(1), layout(2)];
    const [a, b, c] = [buffer(1), buffer(2), buffer(3)];
    const g = group(1);
    cache.store(cache.slot(l1, 256, [a, b], [c]), g);
    expect(cache.size).toBe(1);
    expect(cache.slot(l1, 256, [a, b], [c]).group).toBe(g);
    expect(cache.slot(l1, 256, [b, a], [c]).group).toBeNull();
    expect(cache.slot(l1, 512, [a, b], [c]).group).toBeNull();
    expect(cache.slot(l2, 256, [a, b], [c]).group).toBeNull();
    // The split between inputs and outputs is the layout's: same order, same group.
    expect(cache.slot(l1, 256, [a], [b, c]).group).toBe(g);
    expect(cache.slot(l1, 256, [a, b], []).group).toBeNull();
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.slot(l1, 256, [a, b], [c]).group).toBeNull();
  });
});

describe('BufferHeap', () => {
  it('hands out the lowest id first whatever the release order', () => {
    const heap = new BufferHeap();
    const ids = [7, 3, 9, 0, 12, 5, 3.5, 1, 8];
    const bufs = new Map(ids.map((id) => [id, { label: `b${id}` } as unknown as GPUBuffer]));
    for (const id of ids) heap.push(bufs.get(id)!, id);
    expect(heap.size).toBe(ids.length);
    const order: GPUBuffer[] = [];
    for (let b = heap.pop(); b; b = heap.pop()) order.push(b);
    expect(order).toEqual([...ids].sort((a, b) => a - b).map((id) => bufs.get(id)));
    expect(heap.pop()).toBeUndefined();
  });
});

describe('a repeated step reuses its buffers and bind groups', () => {
  it('creates no bind group and compiles no pipeline the second time', async ({ skip }) => {
    if (!backendsUnderTest().includes('webgpu')) skip();
    const x = tensor(randomArray(64, 51), [8, 8], { backend: 'webgpu' });
    const w = tensor(randomArray(64, 52), [8, 8], { backend: 'webgpu', requiresGrad: true });
    // Temporaries released in an order unlike their allocation order.
    const step = async () => {
      T.tidy(() => T.sum(T.mul(T.add(T.matmul(x, w), 0.5), T.sub(1, T.matmul(w, x)))).backward());
      w.grad!.dispose();
      w.grad = null;
      await T.sync('webgpu');
    };
    await step();
    await step();
    const p = await profile(step);
    expect(p.dispatches).toBeGreaterThan(5);
    expect(p.bindGroups).toBe(0);
    expect(p.pipelines).toBe(0);
    x.dispose();
    w.dispose();
  });
});
