import { describe, expect, it } from 'vitest';
import { LORA_DEFAULTS, layerIndex, matchesTarget, patternValue, resolveLoraConfig, svd } from '../index.js';
import { SeededRandom } from '@webpeft/test-utils';
import { checkLeaksPerTest } from './leak-check.js';

checkLeaksPerTest();

describe('LoraConfig', () => {
  it("has PEFT's defaults", () => {
    const c = resolveLoraConfig({ peftType: 'LORA', targetModules: ['q_proj'] });
    expect(LORA_DEFAULTS).toEqual({ r: 8, loraAlpha: 8, loraDropout: 0, fanInFanOut: false, bias: 'none', useRslora: false, useDora: false, initLoraWeights: true });
    expect(c).toMatchObject({ r: 8, loraAlpha: 8, loraDropout: 0, bias: 'none', useRslora: false, useDora: false, initLoraWeights: true, rankPattern: {}, alphaPattern: {}, layersToTransform: null, modulesToSave: null, inferenceMode: false });
  });

  it('validates with errors that name the field', () => {
    const bad: [object, RegExp][] = [
      [{ r: 0 }, /r must be a positive integer/],
      [{ r: 2.5 }, /r must be a positive integer/],
      [{ loraDropout: 1 }, /loraDropout must be in \[0, 1\)/],
      [{ bias: 'some' }, /bias must be/],
      [{ initLoraWeights: 'corda' }, /initLoraWeights/],
      [{ targetModules: [] }, /empty list/],
      [{ targetModules: '.*q_proj', layersToTransform: [0] }, /layersToTransform.*regex/],
      [{ layersPattern: 'layers' }, /layersToTransform.*must also be specified/],
      [{ rankPattern: { q_proj: 0 } }, /rankPattern\['q_proj'\]/],
    ];
    for (const [fields, msg] of bad) expect(() => resolveLoraConfig({ peftType: 'LORA', targetModules: ['q'], ...fields } as never), JSON.stringify(fields)).toThrow(msg);
    expect(() => resolveLoraConfig({ peftType: 'LORA' })).toThrow(/targetModules is required/);
  });

  it('matches targets as PEFT: exact or dotted suffix for lists, full match for a regex', () => {
    const spec = { targetModules: ['q_proj', 'mlp.c_proj'] };
    expect(matchesTarget(spec, 'model.layers.0.self_attn.q_proj')).toBe(true);
    expect(matchesTarget(spec, 'q_proj')).toBe(true);
    expect(matchesTarget(spec, 'model.layers.0.self_attn.xq_proj')).toBe(false);
    expect(matchesTarget(spec, 'transformer.h.0.mlp.c_proj')).toBe(true);
    expect(matchesTarget(spec, 'transformer.h.0.attn.c_proj')).toBe(false);
    expect(matchesTarget({ targetModules: '.*\\.(q|v)_proj' }, 'model.layers.3.self_attn.v_proj')).toBe(true);
    expect(matchesTarget({ targetModules: '(q|v)_proj' }, 'model.layers.3.self_attn.v_proj')).toBe(false); // full match
    expect(matchesTarget({ targetModules: ['q_proj'], excludeModules: ['layers.0.self_attn.q_proj'] }, 'model.layers.0.self_attn.q_proj')).toBe(false);
  });

  it('selects layers by index (with and without layersPattern)', () => {
    expect(layerIndex('model.layers.12.self_attn.q_proj')).toBe(12);
    expect(layerIndex('transformer.h.3.attn.c_attn', 'h')).toBe(3);
    expect(layerIndex('transformer.h.3.attn.c_attn', 'layers')).toBeNull();
    const spec = { targetModules: ['q_proj'], layersToTransform: [1, 2] };
    expect(matchesTarget(spec, 'model.layers.1.self_attn.q_proj')).toBe(true);
    expect(matchesTarget(spec, 'model.layers.0.self_attn.q_proj')).toBe(false);
    expect(matchesTarget({ ...spec, layersToTransform: 0 }, 'model.layers.0.self_attn.q_proj')).toBe(true);
  });

  it('rank and alpha patterns match a dotted suffix', () => {
    expect(patternValue({ v_proj: 4 }, 'model.layers.0.self_attn.v_proj', 8)).toBe(4);
    expect(patternValue({ 'layers.0.self_attn.v_proj': 2 }, 'model.layers.0.self_attn.v_proj', 8)).toBe(2);
    expect(patternValue({ v_proj: 4 }, 'model.layers.0.self_attn.q_proj', 8)).toBe(8);
  });
});

describe('svd (float64 one-sided Jacobi)', () => {
  for (const [m, n] of [[5, 3], [3, 5], [6, 6], [7, 1]]) {
    it(`[${m}, ${n}]: U diag(S) Vh reconstructs A, U and Vh orthonormal, S descending`, () => {
      const r = new SeededRandom(m * 10 + n);
      const a = Array.from({ length: m * n }, () => r.uniform(-1, 1));
      const { U, S, Vh, k } = svd(a, m, n);
      expect(k).toBe(Math.min(m, n));
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let v = 0;
        for (let c = 0; c < k; c++) v += U[i * k + c] * S[c] * Vh[c * n + j];
        expect(Math.abs(v - a[i * n + j])).toBeLessThan(1e-12);
      }
      for (let c = 0; c < k; c++) for (let d = 0; d < k; d++) {
        let u = 0;
        let v = 0;
        for (let i = 0; i < m; i++) u += U[i * k + c] * U[i * k + d];
        for (let j = 0; j < n; j++) v += Vh[c * n + j] * Vh[d * n + j];
        expect(Math.abs(u - (c === d ? 1 : 0))).toBeLessThan(1e-12);
        expect(Math.abs(v - (c === d ? 1 : 0))).toBeLessThan(1e-12);
      }
      for (let c = 1; c < k; c++) expect(S[c]).toBeLessThanOrEqual(S[c - 1]);
    });
  }

  it('a rank-1 matrix has one non-zero singular value equal to |u||v|', () => {
    const u = [1, 2, 2];
    const v = [3, 4];
    const { S } = svd(u.flatMap((x) => v.map((y) => x * y)), 3, 2);
    expect(S[0]).toBeCloseTo(15, 12);
    expect(S[1]).toBeCloseTo(0, 12);
  });
});
