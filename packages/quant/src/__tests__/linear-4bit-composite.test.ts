import { type Tensor, tensor } from '@webpeft/tensor';
import { runComposite, runOp } from '@webpeft/tensor/kernel';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Linear4bitAttrs, quantize4bit, registerLinear4bitOps, weightInputs } from '../index.js';
import { uploadCodeTables } from './code-cache.js';

beforeAll(async () => {
  await uploadCodeTables(await initBackends());
  registerLinear4bitOps();
});

let seed = 300;

describe('Linear4bit: the fused kernels equal the composite definition', () => {
  const [out, inF] = [24, 40];
  // 2 rows run the memory-bound kernel on webgpu; 80 rows the dequantize-then-matmul path.
  for (const rows of [2, 80]) {
    for (const nested of [false, true]) {
      it(`${rows} rows, nested=${nested}: forward and input gradient`, async () => {
        for (const backend of backendsUnderTest()) {
          const w = tensor(randomArray(out * inF, seed++, -0.5, 0.5), [out, inF], { backend });
          const { packed, state } = await quantize4bit(w, { blocksize: 32, doubleQuant: nested });
          const weight = weightInputs({ packed, quantState: state });
          const attrs: Linear4bitAttrs = { inFeatures: inF, outFeatures: out, blocksize: 32, nested, nestedBlocksize: state.nested?.blocksize ?? 0 };
          const xd = randomArray(rows * inF, seed++);
          const dyd = randomArray(rows * out, seed++);
          const fused = tensor(xd, [rows, inF], { backend, requiresGrad: true });
          const comp = tensor(xd, [rows, inF], { backend, requiresGrad: true });
          const dy = tensor(dyd, [rows, out], { backend });
          const yFused = runOp('Linear4bit', [fused, ...weight], attrs);
          const yComp = runComposite('Linear4bit', [comp, ...weight], attrs);
          expect(yFused.shape).toEqual([rows, out]);
          const label = `${backend} rows=${rows} nested=${nested}`;
          expectClose(await yFused.data(), await yComp.data(), { rtol: 1e-5, atol: 1e-5, label: `${label} forward` });
          yFused.backward(dy);
          yComp.backward(dy);
          expectClose(await fused.grad!.data(), await comp.grad!.data(), { rtol: 1e-5, atol: 1e-5, label: `${label} dx through backward` });
          // The gradient op on its own, against its composite.
          const dxFused = runOp('Linear4bitGradInput', [dy, ...weight], attrs);
          const dxComp = runComposite('Linear4bitGradInput', [dy, ...weight], attrs);
          expectClose(await dxFused.data(), await dxComp.data(), { rtol: 1e-5, atol: 1e-5, label: `${label} Linear4bitGradInput` });
          const all: Tensor[] = [w, packed, fused, comp, dy, yFused, yComp, dxFused, dxComp];
          for (const t of all) t.dispose();
          state.dispose();
        }
      });
    }
  }
});
