import { LSTM } from '@webpeft/nn';
import { type Tensor, assign, mul, noGrad, sum, tensor } from '@webpeft/tensor';
import { backendsUnderTest, expectClose, initBackends, randomArray } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import golden from './fixtures/lstm.json' with { type: 'json' };

// Reference values: torch.nn.LSTM(batch_first=True) in float64 (tools/golden/p_tuning_golden.py).
beforeAll(async () => {
  await initBackends();
});

interface Case {
  inputSize: number;
  hiddenSize: number;
  numLayers: number;
  bidirectional: boolean;
  input: { shape: number[]; value: number[]; grad: number[] };
  weights: Record<string, { shape: number[]; value: number[]; grad: number[] }>;
  output: { shape: number[]; value: number[] };
  outputGrad: number[];
}

function setValues(t: Tensor, values: number[]): void {
  const src = tensor(Float32Array.from(values), t.shape, { backend: t.backend.name });
  noGrad(() => assign(t, src));
  src.dispose();
}

describe('LSTM matches torch.nn.LSTM', () => {
  for (const name of ['unidirectional', 'bidirectional'] as const) {
    it(`${name}: output, input gradient and every weight gradient`, async () => {
      const fx = golden[name] as Case;
      for (const backend of backendsUnderTest()) {
        const lstm = new LSTM(fx.inputSize, fx.hiddenSize, { numLayers: fx.numLayers, bidirectional: fx.bidirectional, backend });
        const params = lstm.stateDict();
        expect([...params.keys()].sort()).toEqual(Object.keys(fx.weights).sort());
        for (const [k, w] of Object.entries(fx.weights)) {
          const p = params.get(k)!;
          expect(p.shape).toEqual(w.shape);
          setValues(p, w.value);
        }
        const x = tensor(Float32Array.from(fx.input.value), fx.input.shape, { backend });
        x.requiresGrad = true;
        const out = lstm.forward(x);
        expect(out.shape).toEqual(fx.output.shape);
        expectClose(await out.data(), fx.output.value, { rtol: 1e-4, atol: 1e-5, label: `${name} ${backend} output` });
        const g = tensor(Float32Array.from(fx.outputGrad), out.shape, { backend });
        const prod = mul(out, g);
        const loss = sum(prod);
        loss.backward();
        expectClose(await x.grad!.data(), fx.input.grad, { rtol: 1e-3, atol: 1e-5, label: `${name} ${backend} dx` });
        for (const [k, w] of Object.entries(fx.weights)) {
          expectClose(await params.get(k)!.grad!.data(), w.grad, { rtol: 1e-3, atol: 1e-5, label: `${name} ${backend} d${k}` });
        }
        for (const t of [x, out, g, prod, loss]) t.dispose();
        lstm.dispose();
      }
    });
  }

  it('rejects an input that is not [batch, steps, inputSize] and bad sizes, naming them', () => {
    const lstm = new LSTM(3, 2, { backend: 'cpu' });
    const x = tensor(randomArray(8, 1), [2, 4], { backend: 'cpu' });
    expect(() => lstm.forward(x)).toThrow(/LSTM.forward: input must be \[batch, steps, 3\] \(batch first\), got \[2, 4\] \(f32\)/);
    x.dispose();
    lstm.dispose();
    expect(() => new LSTM(3, 0)).toThrow(/LSTM: hiddenSize must be a positive integer, got 0/);
    expect(() => new LSTM(3, 2, { dropout: 1 })).toThrow(/LSTM: dropout must be in \[0, 1\), got 1/);
  });
});
