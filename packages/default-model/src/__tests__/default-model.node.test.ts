import { readFile } from 'node:fs/promises';
import { fromPretrained, generate } from '@webpeft/nn';
import { initBackends } from '@webpeft/test-utils';
import { type BackendName, setBackend, tensor } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MODEL_FILES, DEFAULT_MODEL_URL, defaultModelFileUrl } from '../index.js';

/** What tools/default-model/train.py recorded from the saved checkpoint with torch. */
interface Reference {
  parameters: number;
  heldout_loss: number;
  excerpt: { text: string; ids: number[]; seq_len: number; loss: number };
  greedy: { prompt: string; prompt_ids: number[]; new_ids: number[] };
}

let backends: BackendName[] = [];
let reference: Reference;
beforeAll(async () => {
  backends = await initBackends();
  reference = JSON.parse(await readFile(new URL('../../reference.json', import.meta.url), 'utf8')) as Reference;
});

describe('the default model', () => {
  it('ships every checkpoint file, within the size budget', async () => {
    let bytes = 0;
    for (const file of DEFAULT_MODEL_FILES) bytes += (await readFile(defaultModelFileUrl(file))).byteLength;
    expect(bytes).toBeLessThan(25 * 1024 * 1024);
    const config = JSON.parse(await readFile(defaultModelFileUrl('config.json'), 'utf8')) as { model_type: string; dtype?: string; torch_dtype?: string };
    expect(config.model_type).toBe('llama');
    expect(config.dtype ?? config.torch_dtype).toBe('bfloat16');
    expect(() => defaultModelFileUrl('pytorch_model.bin')).toThrow(/not a file of the default model/);
  });

  it("loads through fromPretrained with held-out loss and greedy tokens equal to torch's", async () => {
    for (const backend of backends) {
      // generate() makes its id tensors on the current backend.
      setBackend(backend);
      const { model, tokenizer } = await fromPretrained(DEFAULT_MODEL_URL, { backend });
      try {
        expect(model.numParameters()).toBe(reference.parameters);
        const { text, ids, seq_len: seq, loss } = reference.excerpt;
        expect(tokenizer!.encode(text, { addSpecialTokens: false })).toEqual(ids);
        // Rows of seq + 1 tokens: positions 0..seq-1 predict tokens 1..seq, exactly torch's windows.
        const rows = (ids.length - 1) / seq;
        const window = Int32Array.from({ length: rows * (seq + 1) }, (_, i) => ids[Math.floor(i / (seq + 1)) * seq + (i % (seq + 1))]);
        const inputIds = tensor(window, [rows, seq + 1], { dtype: 'i32', backend });
        const out = model.forward({ inputIds, labels: inputIds });
        const ours = await out.loss!.item();
        out.logits.dispose();
        out.loss!.dispose();
        inputIds.dispose();
        // Both sides widen the same bf16 weights exactly to f32 and compute in f32; only the
        // summation order differs (WGSL tiles / plain loops vs torch's BLAS). Measured here: equal
        // to the last f32 bit on cpu and on lavapipe. 1e-5 leaves room for other drivers, while a
        // wrong layer (norm eps, RoPE layout, GQA grouping, tied head) moves it by more than 0.01.
        expect(Math.abs(ours - loss), `${backend}: loss ${ours} vs torch ${loss}`).toBeLessThan(1e-5);
        const { prompt_ids: prompt, new_ids: expected } = reference.greedy;
        const { sequences } = await generate(model, [prompt], { maxNewTokens: expected.length });
        expect(sequences[0].slice(prompt.length), `${backend} greedy`).toEqual(expected);
      } finally {
        model.dispose();
      }
    }
  });
});
