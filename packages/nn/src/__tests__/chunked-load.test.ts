/**
 * Checkpoint values reach a parameter split in row chunks (a table larger than one
 * storage binding; made so here by the webgpu backend's `setMaxBindingBytes` testing
 * knob): F32, F16 and BF16 safetensors data decode, upload across the chunks, cast to
 * the parameter's dtype and `assign` into it exactly as into an unsplit parameter.
 */
import { type Tensor, assign, cast, getBackend, zeros } from '@webpeft/tensor';
import { initBackends, randomArray } from '@webpeft/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rawFromArray, rawToTensor } from '../index.js';

beforeAll(async () => {
  await initBackends();
});

afterEach(() => {
  getBackend('webgpu').setMaxBindingBytes(null);
});

describe('loading checkpoint tensors into a parameter split across bindings', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`decodes ${dtype} data into a split f32 parameter`, async () => {
      const values = randomArray(300 * 24, 61);
      const raw = rawFromArray(Float32Array.from(values), [300, 24], dtype);
      // The cpu reference decodes the same bytes.
      const expected = rawToTensor(raw, { key: 'wte', backend: 'cpu' });
      getBackend('webgpu').setMaxBindingBytes(4096);
      const param = zeros([300, 24], { backend: 'webgpu' });
      expect(param.storage!.bindings).toBe(8);
      const decoded = rawToTensor(raw, { key: 'wte', backend: 'webgpu' });
      expect(decoded.storage!.bindings).toBe(8);
      assign(param, decoded);
      expect(await param.data()).toEqual(await expected.data());
      if (getBackend('webgpu').capabilities.f16) {
        // An f16 model: decoded to f16, or cast from the f32 copy (the loader's two paths).
        const half = zeros([300, 24], { backend: 'webgpu', dtype: 'f16' });
        const h16 = rawToTensor(raw, { key: 'wte', backend: 'webgpu', floatDtype: 'f16' });
        const viaCast: Tensor = cast(decoded, 'f16');
        assign(half, h16);
        const ref = rawToTensor(raw, { key: 'wte', backend: 'cpu', floatDtype: 'f16' });
        expect(await half.data()).toEqual(await ref.data());
        const refCast = cast(expected, 'f16');
        expect(await viaCast.data()).toEqual(await refCast.data());
        for (const t of [half, h16, viaCast, ref, refCast]) t.dispose();
      }
      for (const t of [expected, param, decoded]) t.dispose();
    });
  }
});
