/**
 * `--merge-adapters` end to end on the embedded default model (cpu backend): two short LoRA
 * runs save their adapters, a merge run combines them with `cat` (PEFT's exact weighted sum
 * of the deltas) and saves one adapter, whose every layer's delta must equal
 * `sum_i w_i s_i B_i A_i`, computed here in float64 from the two saved adapters. The
 * combination types themselves are checked against PEFT in
 * packages/peft/src/__tests__/merge-golden.test.ts.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { fromPretrained } from '@webpeft/nn';
import { LoraLinear, loadPeftModel } from '@webpeft/peft';
import { expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { runFinetune } from '../src/run.js';

const quiet = (lines: string[]) => ({ log: (l: string) => lines.push(l), progress: { write: () => true } });
const SHORT = ['--method', 'lora', '--rank', '2', '--alpha', '4', '--targets', 'q_proj,v_proj', '--steps', '2', '--warmup', '0', '--batch', '2', '--seq-len', '16', '--eval-batches', '1', '--max-new-tokens', '2', '--corpus-chars', '20000', '--backend', 'cpu'];

beforeAll(async () => {
  await initBackends();
});

describe('--merge-adapters', () => {
  it("combines saved adapters with PEFT's add_weighted_adapter and saves the result (cat: the exact weighted sum of deltas)", async () => {
    const root = mkdtempSync(join(tmpdir(), 'cli-merge-'));
    const [a, b, merged] = [join(root, 'a'), join(root, 'b'), join(root, 'merged')];
    await runFinetune([...SHORT, '--out', a, '--seed', '1', '--lr', '0.05'], quiet([]));
    await runFinetune([...SHORT, '--out', b, '--seed', '2', '--lr', '0.05'], quiet([]));
    const lines: string[] = [];
    const result = await runFinetune([...SHORT, '--out', merged, '--merge-adapters', `${a},${b}`, '--merge-weights', '0.7,-0.4', '--combination-type', 'cat'], quiet(lines));
    expect(result).toEqual({ steps: 0, startStep: 0, losses: [] });
    expect(lines).toContainEqual(expect.stringMatching(/^Merged 2 adapters with cat: rank 4$/));
    expect(lines).toContainEqual(expect.stringMatching(/^Eval loss: base \d+\.\d{4}, merged adapter \d+\.\d{4}$/));
    expect(existsSync(join(merged, 'adapter_model.safetensors'))).toBe(true);

    const { model } = await fromPretrained(DEFAULT_MODEL_URL, { backend: 'cpu' });
    const peft = await loadPeftModel(model, a, { adapterName: 'a' });
    try {
      await peft.loadAdapter(b, 'b');
      await peft.loadAdapter(merged, 'm');
      const w = { a: 0.7, b: -0.4 };
      let layers = 0;
      for (const [path, layer] of peft.base_model.tunerLayers()) {
        if (!(layer instanceof LoraLinear)) continue;
        const [out, inF] = [layer.outFeatures, layer.inFeatures];
        const want = new Float64Array(out * inF);
        for (const name of ['a', 'b'] as const) {
          const { A, B, scaling } = layer.weights(name);
          const [av, bv] = [await A.data(), await B.data()];
          const r = A.shape[0];
          for (let i = 0; i < out; i++) for (let k = 0; k < r; k++) for (let j = 0; j < inF; j++) want[i * inF + j] += w[name] * scaling * bv[i * r + k] * av[k * inF + j];
        }
        const got = layer.deltaWeight('m');
        expectClose(await got.data(), want, { rtol: 1e-5, atol: 1e-6, label: path });
        got.dispose();
        layers++;
      }
      expect(layers).toBeGreaterThan(0);
    } finally {
      peft.dispose();
    }
  });
});
