/**
 * Models in half precision against transformers. tools/golden/nn_models_f16.py records,
 * for each committed model fixture, PyTorch's own discrepancy between its float16 and
 * float32 runs of the same checkpoint (`maxAbsDiff`, kept positions). Our f16 logits
 * must be within FACTOR times that of transformers' f32 logits: an f16 implementation
 * with f32 accumulation rounds as often as PyTorch's, in a different order, so its error
 * is of the same size; the factor 2 leaves room for the two error patterns not lining up.
 */
import { type CausalLM, fromPretrained, generate, openSource, resolveModelDtype } from '@webpeft/nn';
import { initBackends } from '@webpeft/test-utils';
import { type BackendName, type Tensor, cast, getBackend, setBackend, tensor, tidy } from '@webpeft/tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import gpt2 from './fixtures/models/gpt2.json' with { type: 'json' };
import llama from './fixtures/models/llama.json' with { type: 'json' };
import qwen2 from './fixtures/models/qwen2.json' with { type: 'json' };
import mistral from './fixtures/models/mistral.json' with { type: 'json' };
import gpt2F16 from './fixtures/models/f16/gpt2.json' with { type: 'json' };
import llamaF16 from './fixtures/models/f16/llama.json' with { type: 'json' };
import qwen2F16 from './fixtures/models/f16/qwen2.json' with { type: 'json' };
import mistralF16 from './fixtures/models/f16/mistral.json' with { type: 'json' };
import { type ModelFixture, b64F32, fixtureFiles } from './fixtures/models/fixture.js';

const FACTOR = 2;

interface F16Fixture {
  logits_f16: string;
  maxAbsDiff: number;
  maxAbsLogit: number;
}

const FIXTURES: [string, ModelFixture, F16Fixture][] = [
  ['gpt2', gpt2, gpt2F16],
  ['llama', llama, llamaF16],
  ['qwen2', qwen2, qwen2F16],
  ['mistral', mistral, mistralF16],
];

let backends: BackendName[] = [];
/** Backends that hold f16 (an adapter without shader-f16 refuses it; checked below). */
let f16Backends: BackendName[] = [];
beforeAll(async () => {
  backends = await initBackends();
  f16Backends = backends.filter((b) => getBackend(b).capabilities.f16);
});

function ids2d(rows: number[][]): Tensor {
  return tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], { dtype: 'i32' });
}

async function f32Data(t: Tensor): Promise<Float32Array> {
  const w = cast(t, 'f32');
  const d = (await w.data()) as Float32Array;
  w.dispose();
  return d;
}

/** max |a - b| over the kept positions (`mask` `[B, T]`, rows of `v` logits). */
function maxKeptDiff(a: ArrayLike<number>, b: ArrayLike<number>, mask: number[][], v: number): number {
  let worst = 0;
  mask.flat().forEach((m, i) => {
    if (m) for (let j = 0; j < v; j++) worst = Math.max(worst, Math.abs(a[i * v + j] - b[i * v + j]));
  });
  return worst;
}

describe('f16 models match transformers within PyTorch\'s own f16 tolerance', () => {
  for (const [name, fx, f16] of FIXTURES) {
    it(`${name}: f16 forward, backward and generate`, async () => {
      for (const backend of f16Backends) {
        setBackend(backend);
        const { model } = await fromPretrained(openSource(fixtureFiles(fx)), { dtype: 'f16' });
        for (const [key, p] of model.namedParameters()) expect(p.dtype, `${name} ${key}`).toBe('f16');
        const v = model.config.vocab_size;
        const inputIds = ids2d(fx.input_ids);
        const attentionMask = ids2d(fx.attention_mask);
        const labels = ids2d(fx.labels);
        const { logits, loss } = model.forward({ inputIds, attentionMask, labels });
        expect(logits.dtype).toBe('f16');
        expect(loss!.dtype, 'the loss of an f16 model is f32').toBe('f32');
        const ours = await f32Data(logits);
        const torch32 = b64F32(fx.logits);
        const diff = maxKeptDiff(ours, torch32, fx.attention_mask, v);
        const label = `${name} ${backend}`;
        expect(diff, `${label}: max |ours f16 - torch f32| vs torch's own ${f16.maxAbsDiff}`).toBeLessThanOrEqual(FACTOR * f16.maxAbsDiff);
        // And close to transformers' own f16 logits (both within the f16 error of the f32 values).
        expect(maxKeptDiff(ours, b64F32(f16.logits_f16), fx.attention_mask, v), `${label}: vs torch f16`).toBeLessThanOrEqual((FACTOR + 1) * f16.maxAbsDiff);
        // The loss in f32 from f16 logits: within the logits' tolerance of PyTorch's f32 loss.
        expect(Math.abs((await loss!.item()) - fx.loss), `${label} loss`).toBeLessThanOrEqual(FACTOR * f16.maxAbsDiff);
        loss!.backward();
        for (const [key, p] of model.namedParameters()) {
          expect(p.grad?.dtype, `${label} grad of ${key}`).toBe('f16');
          const g = await f32Data(p.grad!);
          expect(g.every(Number.isFinite), `${label} grad of ${key} finite`).toBe(true);
        }
        for (const t of [inputIds, attentionMask, labels, logits, loss!]) t.dispose();
        // Generation compiles its own (KV-cache) shaders: checked on the two families' first members.
        if (name === 'gpt2' || name === 'llama') await checkGenerate(model, fx, f16, label);
        model.dispose();
      }
      // Cold shader compiles of the f16 pipelines take minutes on a software adapter.
    }, 600_000);
  }
});

/** Greedy generation in f16 from row 0 (no padding): its first step's logits are the forward's last position. */
async function checkGenerate(model: CausalLM, fx: ModelFixture, f16: F16Fixture, label: string): Promise<void> {
  const prompt = [fx.input_ids[0]];
  const out = await generate(model, prompt, { maxNewTokens: 3, outputLogits: true, eosTokenId: [] });
  const v = model.config.vocab_size;
  const t = prompt[0].length;
  expect(out.sequences[0].length).toBe(t + 3);
  for (const tok of out.sequences[0].slice(t)) expect(tok >= 0 && tok < v, `${label} token ${tok}`).toBe(true);
  const torchLast = b64F32(fx.logits).subarray((t - 1) * v, t * v);
  const diff = maxKeptDiff(out.logits![0], torchLast, [[1]], v);
  expect(diff, `${label}: first generated step's logits`).toBeLessThanOrEqual(FACTOR * f16.maxAbsDiff);
}

describe('fromPretrained dtype option', () => {
  it("'auto' picks f16 only on a device backend with f16; 'f32' by default", () => {
    tidy(() => {
      expect(resolveModelDtype(undefined, 'cpu')).toBe('f32');
      expect(resolveModelDtype('auto', 'cpu')).toBe('f32');
      expect(resolveModelDtype('f16', 'cpu')).toBe('f16');
      if (backends.includes('webgpu')) {
        const f16 = getBackend('webgpu').capabilities.f16;
        expect(resolveModelDtype('auto', 'webgpu')).toBe(f16 ? 'f16' : 'f32');
        if (!f16) expect(() => resolveModelDtype('f16', 'webgpu')).toThrow(/dtype 'f16' needs a backend that can hold f16/);
      }
    });
  });

  it('a bf16 weight beyond f16 range is refused, naming the tensor, and nothing leaks', async () => {
    setBackend('cpu');
    // Patch one element of the LLaMA checkpoint (bf16) to 1e5, beyond f16's 65504.
    const files = fixtureFiles(llama);
    const bytes = Uint8Array.from(files['model.safetensors'] as Uint8Array);
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    const key = 'model.layers.0.mlp.up_proj.weight';
    expect(header[key].dtype).toBe('BF16');
    const at = 8 + headerLen + header[key].data_offsets[0] + 2 * 5;
    // bf16 bits of 1e5 (0x47c3 = 99840).
    bytes[at] = 0xc3;
    bytes[at + 1] = 0x47;
    await expect(fromPretrained(openSource({ ...files, 'model.safetensors': bytes }), { dtype: 'f16' })).rejects.toThrow(
      new RegExp(`${key.replace(/\./g, '\\.')}.*element 5 is 99840, beyond f16's range`),
    );
    // The f32 model loads the same file.
    const { model } = await fromPretrained(openSource({ ...files, 'model.safetensors': bytes }), { dtype: 'f32' });
    model.dispose();
  });
});
