/**
 * `--merge-and-export DIR` end to end on the embedded default model (cpu backend, a short
 * run): the exported folder loads with our `fromPretrained` and computes what the trained
 * adapter computes, for LoRA and for QLoRA (whose merge dequantizes the NF4 base). The
 * transformers side of the same export path is the golden check of
 * packages/peft/src/__tests__/merged-export.test.ts (tools/golden/check_our_exports.py).
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { type CausalLM, fromPretrained } from '@webpeft/nn';
import { loadPeftModel } from '@webpeft/peft';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor, quantizeModel } from '@webpeft/quant';
import { noGrad, tensor } from '@webpeft/tensor';
import { expectClose, initBackends, takeData } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { OptionError } from '../src/options.js';
import { runFinetune } from '../src/run.js';

const quiet = (lines: string[]) => ({ log: (l: string) => lines.push(l), progress: { write: () => true } });
const SHORT = ['--steps', '2', '--warmup', '0', '--batch', '2', '--seq-len', '16', '--eval-batches', '1', '--max-new-tokens', '2', '--corpus-chars', '20000', '--backend', 'cpu'];

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them
  // before the per-test leak check takes its baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

async function logitsOf(model: CausalLM): Promise<Float32Array> {
  const row = [5, 17, 301, 42, 1000, 7, 2048, 99];
  const ids = tensor(Int32Array.from(row), [1, row.length], { dtype: 'i32', backend: 'cpu' });
  const out = await takeData(noGrad(() => model.forward({ inputIds: ids }).logits));
  ids.dispose();
  return out as Float32Array;
}

describe('--merge-and-export', () => {
  it('refuses a non-empty folder before loading anything, printing nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'merge-busy-'));
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    const lines: string[] = [];
    const run = runFinetune([...SHORT, '--merge-and-export', dir], quiet(lines));
    await expect(run).rejects.toBeInstanceOf(OptionError);
    await expect(run).rejects.toThrow(/^--merge-and-export: '.*' exists and is not an empty directory; choose a new folder$/);
    expect(lines).toEqual([]);
    expect(readdirSync(dir)).toEqual(['keep.txt']);
  });

  for (const method of ['lora', 'qlora'] as const) {
    it(`${method}: the exported folder computes what the trained adapter computes`, async () => {
      const root = mkdtempSync(join(tmpdir(), `merge-${method}-`));
      const [out, exported] = [join(root, 'adapter'), join(root, 'merged')];
      mkdirSync(out);
      const lines: string[] = [];
      await runFinetune([...SHORT, '--method', method, '--out', out, '--merge-and-export', exported], quiet(lines));
      expect(lines.at(-2)).toMatch(new RegExp(`^Merged model exported as a Hugging Face checkpoint to .*merged/ \\(config\\.json, model\\.safetensors [\\d.]+ MiB\\)$`));
      expect(readdirSync(exported).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      const config = JSON.parse(readFileSync(join(exported, 'config.json'), 'utf8')) as Record<string, unknown>;
      // The default targets adapt the tied head: it is exported with its own weight.
      expect(config).toMatchObject({ model_type: 'llama', dtype: 'float32', tie_word_embeddings: false });

      const merged = await fromPretrained(exported, { backend: 'cpu' });
      const base = await fromPretrained(DEFAULT_MODEL_URL, { backend: 'cpu' });
      if (method === 'qlora') await quantizeModel(base.model, { quantType: 'nf4', doubleQuant: true });
      const trained = await loadPeftModel(base.model, out);
      expectClose(await logitsOf(merged.model), await logitsOf(trained.model as CausalLM), { rtol: 0, atol: 1e-4, label: `${method}: exported vs adapter on its base` });
      merged.model.dispose();
      trained.dispose();
    });
  }
});
