/**
 * The merged-LoRA exports checked against transformers (tools/golden/README.md, "Merged
 * exports"): a golden base checkpoint (transformers' own, from packages/nn's fixtures),
 * LoRA with seeded weights moved off their init, `mergeAndUnload({ dequantize: true })`
 * and `savePretrained`. Built on the cpu backend, so the bytes are the same on every run:
 * `tools/golden/write-our-exports.ts` writes these folders for transformers to load, and
 * `merged-export.test.ts` builds them again and checks their hash against the fixture.
 */
import { type CausalLM, type RawConfig, fromPretrained, openSource } from '@webpeft/nn';
import { type Tensor, add, assign, manualSeed, mul, noGrad, randn } from '@webpeft/tensor';
import gpt2 from '../../../nn/src/__tests__/fixtures/models/gpt2.json' with { type: 'json' };
import llama from '../../../nn/src/__tests__/fixtures/models/llama.json' with { type: 'json' };
import { type LoraConfig, getPeftModel } from '../index.js';

/** One export case: a base fixture and the LoRA config merged into it. */
export interface ExportCase {
  name: string;
  base: 'gpt2' | 'llama';
  config: LoraConfig;
  /** Passed to `savePretrained`: small enough to shard the checkpoint. */
  maxShardBytes?: number;
}

export const EXPORT_CASES: ExportCase[] = [
  // Conv1D bases: the dequantizing merge leaves Linear [out, in]; the export restores [in, out].
  { name: 'merged-lora-gpt2', base: 'gpt2', config: { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_proj', 'c_fc'] } },
  // The same merge written as shards and an index (transformers' sharded layout).
  { name: 'merged-lora-gpt2-sharded', base: 'gpt2', config: { peftType: 'LORA', r: 4, loraAlpha: 8, targetModules: ['c_attn', 'c_proj', 'c_fc'] }, maxShardBytes: 40_000 },
  { name: 'merged-lora-llama', base: 'llama', config: { peftType: 'LORA', r: 4, loraAlpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] } },
];

const BASES = { gpt2, llama } as const;

function b64Bytes(s: string): Uint8Array {
  const bin = atob(s);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** The base checkpoint's files (transformers' `save_pretrained` output). */
export function baseFiles(base: ExportCase['base']): Record<string, Uint8Array | string> {
  const fx = BASES[base];
  return { 'config.json': fx.files['config.json'], 'model.safetensors': b64Bytes(fx.files['model.safetensors']) };
}

/** Fixed ids for the logits: two rows, a different stride each, no special tokens. */
export function exportInputIds(vocab: number): number[][] {
  return [0, 1].map((b) => Array.from({ length: 6 }, (_, t) => 3 + ((7 * t + 11 * b + 5) % (vocab - 3))));
}

/** t <- t + 0.3 * noise (seeded): off the init, as after training (LoRA's B starts at zero). */
function perturb(t: Tensor): void {
  noGrad(() => {
    const noise = randn(t.shape, { backend: t.backend.name });
    const scaled = mul(noise, 0.3);
    const moved = add(t, scaled);
    assign(t, moved);
    for (const x of [noise, scaled, moved]) x.dispose();
  });
}

/** The merged model of `c` on the cpu backend (the caller disposes it) and its base config. */
export async function buildMerged(c: ExportCase): Promise<{ model: CausalLM; rawConfig: RawConfig }> {
  manualSeed(31_000 + EXPORT_CASES.indexOf(c));
  const { model, rawConfig } = await fromPretrained(openSource(baseFiles(c.base)), { backend: 'cpu' });
  const peft = getPeftModel(model, c.config);
  for (const t of peft.trainableParameters()) perturb(t);
  const merged = (await peft.mergeAndUnload({ dequantize: true })) as CausalLM;
  merged.eval();
  return { model: merged, rawConfig };
}
