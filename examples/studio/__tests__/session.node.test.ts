/**
 * The studio worker's session, driven directly in Node (Dawn): every method trains
 * from the default model and streams its events, the base side of a generation is the
 * plain base model's greedy continuation, adapters survive download and reload bit for
 * bit, a merged model gives the adapter's logits, pause/resume/stop act between
 * steps, and bad input fails with the page's error kinds before anything is built.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { type CausalLM, fromPretrained, generate } from '@webpeft/nn';
import { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, FP4_CODE, NF4_CODE, codeTensor } from '@webpeft/quant';
import { noGrad, tensor, tidy } from '@webpeft/tensor';
import { expectClose, initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { describeError } from '../src/errors.ts';
import type { MethodName, TrainSettings, WorkerEvent } from '../src/protocol.ts';
import { SAMPLE_TEXT } from '../src/sample-text.ts';
import { StudioSession } from '../src/session.ts';

const DEFAULT = { kind: 'default', url: DEFAULT_MODEL_URL.href } as const;
const PROMPT = 'Log of the sloop';

function settings(method: MethodName, over: Partial<TrainSettings> = {}): TrainSettings {
  return { method, rank: 4, alpha: 8, targets: method === 'ia3' ? '' : 'all-linear', numVirtualTokens: 4, useRslora: false, loraInit: 'default', loftqIter: 1, reductionFactor: 16, nonLinearity: 'swish', encoder: 'mlp', encoderHiddenSize: 0, lr: 0.01, steps: 3, batch: 1, seqLen: 8, evalEvery: 2, seed: 3, text: SAMPLE_TEXT, dataName: 'sample.txt', packing: false, completionOnly: 'auto', ...over };
}

/** A session on the default model whose models are freed after the test. */
async function session(): Promise<{ s: StudioSession; events: WorkerEvent[] }> {
  const events: WorkerEvent[] = [];
  const s = new StudioSession((e) => events.push(e));
  onTestFinished(() => s.dispose());
  await s.load(DEFAULT);
  return { s, events };
}

/** Greedy continuation of PROMPT by a freshly loaded, unadapted default model. */
async function plainBaseContinuation(maxNewTokens: number): Promise<string> {
  const { model, tokenizer } = await fromPretrained(DEFAULT_MODEL_URL);
  try {
    const ids = tokenizer!.encode(PROMPT, { addSpecialTokens: false });
    const { sequences } = await generate(model, [ids], { maxNewTokens, doSample: false });
    return tokenizer!.decode(sequences[0].slice(ids.length));
  } finally {
    model.dispose();
  }
}

/** Logits `[1, T, V]` of a plain model, computed apart from the session. */
async function plainLogits(model: CausalLM, ids: number[]): Promise<Float32Array> {
  const logits = noGrad(() => tidy(() => model.forward({ inputIds: tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'i32' }) }).logits));
  try {
    return Float32Array.from(await logits.data());
  } finally {
    logits.dispose();
  }
}

beforeAll(async () => {
  // quant keeps one copy of each code table per backend for the process: upload them before the leak check's baseline.
  for (const backend of await initBackends()) for (const table of [NF4_CODE, FP4_CODE, DYNAMIC_SIGNED, DYNAMIC_UNSIGNED]) codeTensor(table, backend);
});

describe.each(['lora', 'qlora', 'dora', 'ia3', 'adapter-houlsby', 'adapter-pfeiffer', 'adapter-parallel', 'prompt', 'prefix', 'p-tuning'] as const)('%s', (method) => {
  it(`${method}: trains, streams step/eval events, generates beside the plain base, reloads its adapter bit for bit, and merges where the method can`, { timeout: 240_000 }, async () => {
    const { s, events } = await session();
    const summary = await s.train(settings(method));
    expect(summary).toMatchObject({ steps: 3, stopped: false });
    const steps = events.filter((e) => e.type === 'step');
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3]);
    for (const e of steps) {
      expect(Number.isFinite(e.loss) && e.loss > 0).toBe(true);
      expect(e.memoryByTag.weights).toBeGreaterThan(0);
      expect(e.peakBytes).toBeGreaterThanOrEqual(e.memoryByTag.weights);
    }
    expect(events.filter((e) => e.type === 'eval').map((e) => e.step)).toEqual([0, 2, 3]);
    expect(events.filter((e) => e.type === 'state').map((e) => e.state)).toEqual(['training', 'idle']);

    const out = await s.generate(PROMPT, 4);
    // The base side is the base model alone: what a model without adapters continues with.
    // A 4-bit base is not the plain model, so QLoRA's base side is only checked to be text.
    if (method === 'qlora') expect(out.base.length).toBeGreaterThan(0);
    else expect(out.base).toBe(await plainBaseContinuation(4));
    expect(out.adapted.length).toBeGreaterThan(0);

    const before = await s.logits(PROMPT);
    const { files } = await s.exportAdapter();
    expect(Object.keys(files).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    await s.loadAdapter(files, method === 'qlora');
    const after = await s.logits(PROMPT);
    expect(after.shape).toEqual(before.shape);
    expect(after.logits).toEqual(before.logits);

    if (method === 'prompt' || method === 'prefix' || method === 'p-tuning') {
      await expect(s.mergeAndExport()).rejects.toThrow(/virtual tokens cannot be merged into the weights/);
      return;
    }
    if (method.startsWith('adapter-')) {
      await expect(s.mergeAndExport()).rejects.toSatisfy((e) => describeError(e).kind === 'invalid-setting' && /BOTTLENECK: .* cannot be merged/.test(describeError(e).message));
      // The refusal changed nothing: the adapter still gives its logits.
      expect((await s.logits(PROMPT)).logits).toEqual(before.logits);
      return;
    }
    const { files: folder } = await s.mergeAndExport();
    expect(Object.keys(folder).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const { model } = await fromPretrained(folder, { tokenizer: false });
    onTestFinished(() => model.dispose());
    // Merging folds the adapter into W once instead of applying it per forward (a 4-bit
    // base is dequantized exactly first): f32 rounding only.
    expectClose(await plainLogits(model, before.inputIds), Float32Array.from(before.logits), { atol: 1e-4, rtol: 1e-4 });
    // The session keeps the adapter (restored from its own files) after the merge.
    expect((await s.logits(PROMPT)).logits).toEqual(before.logits);
  });
});

describe('method options', () => {
  it('rsLoRA scales by alpha / sqrt(rank) and says so in the adapter file; the bottleneck width follows the reduction factor', async () => {
    const { s } = await session();
    await s.train(settings('lora', { useRslora: true, rank: 4, alpha: 8 }));
    const lora = JSON.parse(new TextDecoder().decode((await s.exportAdapter()).files['adapter_config.json'])) as Record<string, unknown>;
    expect(lora).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, use_rslora: true });
    await s.train(settings('adapter-parallel', { reductionFactor: 4, nonLinearity: 'relu' }));
    const adapter = JSON.parse(new TextDecoder().decode((await s.exportAdapter()).files['adapter_config.json'])) as Record<string, unknown>;
    expect(adapter).toMatchObject({ peft_type: 'BOTTLENECK', is_parallel: true, mh_adapter: false, reduction_factor: 4, non_linearity: 'relu', scaling: 4 });
  });
});

describe('LoRA initialisations and combining adapters', () => {
  it('PiSSA, OLoRA and LoftQ rewrite the base before training (QLoRA quantizes after) and are saved in the adapter config', { timeout: 240_000 }, async () => {
    const { s, events } = await session();
    for (const [method, loraInit] of [['lora', 'olora'], ['qlora', 'loftq']] as const) {
      await s.train(settings(method, { loraInit, targets: 'q_proj,v_proj', steps: 1, evalEvery: 0 }));
      // q_proj and v_proj of every decoder layer.
      expect(events).toContainEqual({ type: 'log', line: expect.stringMatching(new RegExp(`^${loraInit}: initialised \\d*[02468] LoRA layers from the base weights \\(the base keeps the residual\\)$`)) as string });
      const config = JSON.parse(new TextDecoder().decode((await s.exportAdapter()).files['adapter_config.json'])) as Record<string, unknown>;
      expect(config).toMatchObject({ peft_type: 'LORA', init_lora_weights: loraInit });
    }
    await expect(s.train(settings('dora', { loraInit: 'pissa' }))).rejects.toThrow(/loraInit pissa applies to LoRA and QLoRA, not dora/);
    await expect(s.train(settings('lora', { loraInit: 'corda' }))).rejects.toThrow(/loraInit must be default, gaussian, pissa, pissa_niter_K \(K >= 1\), olora or loftq/);
  });

  it("combines the current adapter with another one's files (PEFT's add_weighted_adapter): cat with weights 0, 1 gives the other adapter's logits", { timeout: 240_000 }, async () => {
    const { s } = await session();
    await s.train(settings('lora', { seed: 3, targets: 'q_proj,v_proj', evalEvery: 0 }));
    const first = (await s.exportAdapter()).files;
    const firstLogits = (await s.logits(PROMPT)).logits;
    await s.train(settings('lora', { seed: 4, targets: 'q_proj,v_proj', evalEvery: 0 }));
    await expect(s.combineAdapter(first, [0.5, 0.5], { combinationType: 'ties' })).rejects.toThrow(/option 'density' is required for combinationType 'ties'/);
    await expect(s.combineAdapter(first, [0.5, 0.5], { combinationType: 'average' })).rejects.toThrow(/combination type must be one of linear, cat, svd/);
    expect(await s.combineAdapter(first, [0, 1], { combinationType: 'cat' })).toEqual({ combinationType: 'cat', rank: 8 });
    expectClose((await s.logits(PROMPT)).logits, firstLogits, { rtol: 1e-4, atol: 1e-4, label: 'cat [0, 1]: the other adapter alone' });
    const combined = JSON.parse(new TextDecoder().decode((await s.exportAdapter()).files['adapter_config.json'])) as Record<string, unknown>;
    expect(combined).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 8 });
    await s.train(settings('ia3'));
    await expect(s.combineAdapter(first, [1, 1], { combinationType: 'linear' })).rejects.toThrow(/combining adapters works on LoRA adapters .*; the current adapter is IA3/);
  });
});

describe('controls', () => {
  it('pauses between steps, resumes, and stops with the steps done so far', async () => {
    const events: WorkerEvent[] = [];
    let s: StudioSession | null = null;
    const emit = (e: WorkerEvent) => {
      events.push(e);
      if (e.type === 'step' && e.step === 1) {
        s!.control!.pause();
        setTimeout(() => {
          // Paused: no step ran while waiting.
          expect(events.filter((x) => x.type === 'step')).toHaveLength(1);
          s!.control!.resume();
        }, 300);
      }
      if (e.type === 'step' && e.step === 2) s!.control!.stop();
    };
    s = new StudioSession(emit);
    onTestFinished(() => s.dispose());
    await s.load(DEFAULT);
    const summary = await s.train(settings('lora', { steps: 50, evalEvery: 0 }));
    expect(summary).toMatchObject({ steps: 2, stopped: true });
    expect(events.filter((e) => e.type === 'state').map((e) => e.state)).toEqual(['training', 'paused', 'training', 'idle']);
    expect((await s.generate(PROMPT, 2)).adapted.length).toBeGreaterThan(0);
  });
});

describe('clear failures', () => {
  it('refuses bad settings and a missing adapter before building anything', async () => {
    const { s, events } = await session();
    await expect(s.generate(PROMPT, 4)).rejects.toSatisfy((e) => describeError(e).kind === 'no-adapter');
    await expect(s.train(settings('lora', { seqLen: 300 }))).rejects.toSatisfy((e) => describeError(e).kind === 'invalid-setting' && /seqLen 300 exceeds the model's 256 positions/.test(describeError(e).message));
    await expect(s.train(settings('prompt', { seqLen: 250, numVirtualTokens: 8 }))).rejects.toThrow(/seqLen 250 \+ 8 virtual tokens exceeds/);
    await expect(s.train(settings('lora', { lr: 0 }))).rejects.toThrow(/lr must be in \(0, 1\), got 0/);
    await expect(s.train(settings('lora', { text: 'one line only' }))).rejects.toSatisfy((e) => describeError(e).kind === 'malformed-file' && /^sample\.txt: 1 sample; at least 2 are needed/.test(describeError(e).message));
    await expect(s.train(settings('lora', { dataName: 'd.jsonl', text: '{"text":"ok"}\n{"text": oops}\n' }))).rejects.toSatisfy((e) => describeError(e).kind === 'malformed-file' && /^d\.jsonl:2: not valid JSON/.test(describeError(e).message));
    await expect(s.train(settings('lora', { completionOnly: 'true' }))).rejects.toSatisfy((e) => describeError(e).kind === 'invalid-setting' && /completion-only loss: sample\.txt holds plain text samples/.test(describeError(e).message));
    await expect(s.train(settings('prompt', { packing: true }))).rejects.toThrow(/packing: prompt puts virtual tokens in front of every row/);
    await expect(s.train(settings('adapter-houlsby', { nonLinearity: 'sigmoid' }))).rejects.toThrow(/nonLinearity must be one of relu, gelu, gelu_new, swish, silu, tanh, got "sigmoid"/);
    await expect(s.train(settings('p-tuning', { seqLen: 250, numVirtualTokens: 8 }))).rejects.toThrow(/seqLen 250 \+ 8 virtual tokens exceeds/);
    await expect(s.loadAdapter({ 'adapter_config.json': new TextEncoder().encode('{}') }, false)).rejects.toSatisfy((e) => describeError(e).kind === 'malformed-file');
    expect(events.filter((e) => e.type === 'step')).toEqual([]);
  });

  it('names an unsupported model type and a malformed weights file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'studio-bad-model-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const s = new StudioSession(() => {});
    onTestFinished(() => s.dispose());
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'bert', vocab_size: 10, hidden_size: 8 }));
    const unsupported = await s.load({ kind: 'url', url: pathToFileURL(`${dir}/`).href }).catch(describeError);
    expect(unsupported).toMatchObject({ kind: 'unsupported-model' });
    expect((unsupported as { message: string }).message).toMatch(/model_type "bert" is not supported/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 }));
    writeFileSync(join(dir, 'model.safetensors'), new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123]));
    const malformed = await s.load({ kind: 'url', url: pathToFileURL(`${dir}/`).href }).catch(describeError);
    expect(malformed).toMatchObject({ kind: 'malformed-file' });
  });
});
