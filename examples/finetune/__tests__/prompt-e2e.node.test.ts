/**
 * Prompt-learning methods through the fine-tuning CLI: prefix tuning trains on the
 * default model for a few steps, the after-sample comes from `generate()` on the
 * prompt-learning model, and the saved PEFT adapter reproduces that sample when loaded
 * back. Options that cannot work with these methods are refused before any load.
 * Node only: the corpus package reads its files from disk.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL_URL } from '@webpeft/default-model';
import { fromPretrained, parseSafetensors } from '@webpeft/nn';
import { loadPromptLearningModel } from '@webpeft/peft';
import { initBackends } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { OptionError, parseOptions } from '../src/options.js';
import { runFinetune } from '../src/run.js';
import { sample } from '../src/train.js';

const PROMPT = 'Mr. Speaker, Mr. Vice President, members of Congress,';
const QA = fileURLToPath(new URL('../data/moby-dick-qa.jsonl', import.meta.url));

beforeAll(async () => {
  await initBackends();
});

describe('npm run finetune -- --method prompt|prefix|p-tuning', () => {
  it('refuses what prompt-learning methods cannot do, before loading anything', () => {
    const refused: [string[], RegExp][] = [
      [['--method', 'prefix', '--merge-and-export', 'out/never'], /--merge-and-export: method 'prefix' cannot be merged into the base weights/],
      [['--method', 'prompt', '--data', QA, '--packing'], /--packing: --method prompt puts virtual tokens in front of every row.*drop --packing/],
      [['--method', 'prompt', '--encoder', 'lstm'], /--encoder applies to --method p-tuning; got --method prompt/],
      [['--method', 'lora', '--num-virtual-tokens', '8'], /--num-virtual-tokens applies to --method prompt, prefix or p-tuning; got --method lora/],
      [['--method', 'p-tuning', '--encoder', 'gru'], /--encoder must be one of mlp, lstm; got 'gru'/],
      [['--method', 'prefix', '--num-virtual-tokens', '0'], /--num-virtual-tokens/],
    ];
    for (const [argv, message] of refused) {
      const printed: string[] = [];
      expect(() => parseOptions(argv, (t) => printed.push(t)), argv.join(' ')).toThrow(OptionError);
      expect(() => parseOptions(argv, (t) => printed.push(t)), argv.join(' ')).toThrow(message);
      expect(printed).toEqual([]);
    }
    const ok = parseOptions(['--method', 'p-tuning', '--encoder', 'lstm', '--num-virtual-tokens', '4', '--data', QA])!;
    expect([ok.method, ok.encoder, ok.numVirtualTokens]).toEqual(['p-tuning', 'lstm', 4]);
  });

  it('trains prefix tuning, samples through generate(), and saves an adapter that reproduces the sample', async () => {
    const out = mkdtempSync(join(tmpdir(), 'finetune-prefix-'));
    const lines: string[] = [];
    const p = 8;
    const argv = ['--method', 'prefix', '--num-virtual-tokens', String(p), '--steps', '6', '--warmup', '1', '--lr', '3e-1', '--batch', '4', '--seq-len', '32', '--eval-batches', '2', '--max-new-tokens', '16', '--corpus-chars', '40000', '--out', out];
    // Prefix tuning starts from random keys/values (PEFT's init), which cost the base model
    // some loss: a high rate lets 6 steps get below the base's held-out loss.
    const result = (await runFinetune(argv, { log: (l) => lines.push(l), progress: { write: () => true } }))!;
    expect(result.losses.length).toBe(6);
    expect(result.losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    const line = (re: RegExp) => {
      const found = lines.find((l) => re.test(l));
      expect(found, `a line matching ${re} in:\n${lines.join('\n')}`).toBeDefined();
      return re.exec(found!)!;
    };
    line(/^WebPEFT fine-tuning: method prefix, backend webgpu/);
    // The default model: 4 layers, 2 KV heads of 48 dims: a key and a value row per layer and virtual token.
    const config = JSON.parse(readFileSync(new URL('config.json', DEFAULT_MODEL_URL), 'utf8')) as { num_hidden_layers: number; num_key_value_heads: number; hidden_size: number; num_attention_heads: number };
    const width = config.num_hidden_layers * 2 * config.num_key_value_heads * (config.hidden_size / config.num_attention_heads);
    const [, trainable] = line(/^Trainable parameters: ([\d,]+) of [\d,]+ \([\d.]+%\), adapter [\d.]+ MiB as f32$/);
    expect(Number(trainable.replace(/,/g, ''))).toBe(p * width);
    const [, a, b] = line(/^Eval loss: (\d+\.\d+) -> (\d+\.\d+) \(-?[\d.]+%\)$/);
    expect(Number(b)).toBeLessThan(Number(a));
    const before = JSON.parse(line(/^Sample before: (".*")$/)[1]) as string;
    const after = JSON.parse(line(/^Sample after: (".*")$/)[1]) as string;
    expect(before.startsWith(PROMPT) && after.startsWith(PROMPT)).toBe(true);
    expect(after).not.toBe(before);
    line(/^Adapter saved in PEFT format to .* \(adapter_config\.json, adapter_model\.safetensors [\d.]+ MiB\)$/);

    const saved = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect([saved.peft_type, saved.num_virtual_tokens, saved.task_type]).toEqual(['PREFIX_TUNING', p, 'CAUSAL_LM']);
    const tensors = parseSafetensors(readFileSync(join(out, 'adapter_model.safetensors'))).tensors;
    expect(tensors.get('prompt_embeddings')?.shape).toEqual([p, width]);

    // The saved adapter on a fresh base gives the printed after-sample (same prompt, seed, sampling).
    const { model, tokenizer } = await fromPretrained(DEFAULT_MODEL_URL, { backend: 'webgpu' });
    const peft = await loadPromptLearningModel(model, out);
    try {
      const opts = parseOptions(argv)!;
      const text = await sample(peft, tokenizer!, PROMPT, { maxNewTokens: opts.maxNewTokens, seed: opts.seed, temperature: opts.temperature, topP: opts.topP });
      expect(PROMPT + text).toBe(after);
    } finally {
      peft.dispose();
    }
  });

  it('trains P-tuning (LSTM encoder) on padded --data rows, without --packing', async () => {
    const out = mkdtempSync(join(tmpdir(), 'finetune-ptuning-'));
    const lines: string[] = [];
    const argv = ['--method', 'p-tuning', '--encoder', 'lstm', '--num-virtual-tokens', '4', '--data', QA, '--steps', '2', '--warmup', '1', '--batch', '2', '--eval-batches', '1', '--max-new-tokens', '8', '--out', out];
    const result = (await runFinetune(argv, { log: (l) => lines.push(l), progress: { write: () => true } }))!;
    expect(result.losses.length).toBe(2);
    expect(result.losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(lines.some((l) => /^Data: .*moby-dick-qa\.jsonl \(prompt_completion\)/.test(l)), lines.join('\n')).toBe(true);
    expect(lines.some((l) => /^Sample after: "Mr\. Speaker/.test(l)), lines.join('\n')).toBe(true);
    const saved = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect([saved.peft_type, saved.encoder_reparameterization_type, saved.num_virtual_tokens]).toEqual(['P_TUNING', 'LSTM', 4]);
    const config = JSON.parse(readFileSync(new URL('config.json', DEFAULT_MODEL_URL), 'utf8')) as { hidden_size: number };
    // PEFT saves the encoder's output, one row of the model's width per virtual token.
    expect(parseSafetensors(readFileSync(join(out, 'adapter_model.safetensors'))).tensors.get('prompt_embeddings')?.shape).toEqual([4, config.hidden_size]);
  });
});
