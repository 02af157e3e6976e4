/**
 * The per-dispatch host structures: the uniform words (hand-written layout: arrays of 8
 * words first, then scalars in declaration order, padded to 4 words) and the bind-group
 * cache's keys (layout, uniform slot size, buffers in binding order).
 */
import { Uniforms } from '@webpeft/tensor/kernel';
import { describe, expect, it } from 'vitest';
import { BindGroupCache } from '../backends/webgpu/bind-group-cache.js';

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
