/**
 * Builds the chosen fine-tuning method on a freshly loaded base model, with the
 * library's own configs: QLoRA quantizes the base to NF4 with double quantization and
 * puts LoRA on top (as the finetune CLI does); DoRA is LoRA with `useDora`; the
 * bottleneck adapters take the CLI's placements (Houlsby, Pfeiffer, parallel); IA3,
 * prompt tuning, prefix tuning and P-tuning use their PEFT configs.
 */
import type { CausalLM } from '@webpeft/nn';
import {
  ALL_LINEAR,
  BOTTLENECK_NONLINEARITIES,
  type BottleneckConfig,
  type IA3Config,
  type LoraConfig,
  type PTuningConfig,
  type PeftModel,
  type PrefixTuningConfig,
  type PromptLearningModel,
  type PromptTuningConfig,
  getPeftModel,
} from '@webpeft/peft';
import { quantizeModel } from '@webpeft/quant';
import { StudioError } from './errors.js';
import { BOTTLENECK_PLACEMENTS, isPromptMethod } from './method-options.js';
import type { MethodName, TrainSettings } from './protocol.js';

/** A model with adapters: a tuner model (LoRA family, IA3) or a prompt-learning model. */
export type Adapted = { kind: 'tuner'; peft: PeftModel } | { kind: 'prompt'; peft: PromptLearningModel };

/** The 4-bit config QLoRA quantizes with (NF4, double quantization), also used to reload a QLoRA base. */
export const QLORA_QUANT = { quantType: 'nf4', doubleQuant: true } as const;

/** Checks every setting before any model is built; throws naming the first bad one. */
export function checkSettings(s: TrainSettings, maxPositions: number): void {
  const positive: (keyof TrainSettings)[] = ['rank', 'steps', 'batch', 'seqLen', 'numVirtualTokens'];
  for (const k of positive) {
    const v = s[k] as number;
    if (!Number.isInteger(v) || v < 1) throw new StudioError('invalid-setting', `${k} must be a whole number >= 1, got ${String(v)}`);
  }
  if (!(s.lr > 0 && s.lr < 1)) throw new StudioError('invalid-setting', `lr must be in (0, 1), got ${s.lr}`);
  if (!(s.alpha > 0)) throw new StudioError('invalid-setting', `alpha must be > 0, got ${s.alpha}`);
  if (!Number.isInteger(s.evalEvery) || s.evalEvery < 0) throw new StudioError('invalid-setting', `evalEvery must be a whole number >= 0, got ${s.evalEvery}`);
  if (!(s.reductionFactor > 0)) throw new StudioError('invalid-setting', `reductionFactor must be > 0, got ${s.reductionFactor}`);
  if (!(BOTTLENECK_NONLINEARITIES as readonly string[]).includes(s.nonLinearity)) throw new StudioError('invalid-setting', `nonLinearity must be one of ${BOTTLENECK_NONLINEARITIES.join(', ')}, got ${JSON.stringify(s.nonLinearity)}`);
  if (s.encoder !== 'mlp' && s.encoder !== 'lstm') throw new StudioError('invalid-setting', `encoder must be mlp or lstm, got ${JSON.stringify(s.encoder)}`);
  if (!Number.isInteger(s.encoderHiddenSize) || s.encoderHiddenSize < 0) throw new StudioError('invalid-setting', `encoderHiddenSize must be a whole number >= 0 (0: the model's width), got ${String(s.encoderHiddenSize)}`);
  if (!/^(default|gaussian|pissa|pissa_niter_[1-9]\d*|olora|loftq)$/.test(s.loraInit)) throw new StudioError('invalid-setting', `loraInit must be default, gaussian, pissa, pissa_niter_K (K >= 1), olora or loftq, got ${JSON.stringify(s.loraInit)}`);
  if (s.loraInit !== 'default' && s.method !== 'lora' && s.method !== 'qlora') throw new StudioError('invalid-setting', `loraInit ${s.loraInit} applies to LoRA and QLoRA, not ${s.method}`);
  if (!Number.isInteger(s.loftqIter) || s.loftqIter < 1) throw new StudioError('invalid-setting', `loftqIter must be a whole number >= 1, got ${String(s.loftqIter)}`);
  if (s.packing && isPromptMethod(s.method)) throw new StudioError('invalid-setting', `packing: ${s.method} puts virtual tokens in front of every row, which a packed row's per-sample mask cannot cover; turn packing off (rows are then padded)`);
  // Prompt tuning and P-tuning prepend their virtual tokens to the input positions; prefix tuning's sit in the key/value cache.
  const virtual = s.method === 'prompt' || s.method === 'p-tuning' ? s.numVirtualTokens : 0;
  if (s.seqLen + virtual > maxPositions) throw new StudioError('invalid-setting', `seqLen ${s.seqLen}${virtual ? ` + ${virtual} virtual tokens` : ''} exceeds the model's ${maxPositions} positions`);
}

/** Module names from the targets field: `all-linear`, a comma list, or empty for the method's defaults. */
export function parseTargets(text: string): string[] | string | undefined {
  const names = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  if (names.length === 0) return undefined;
  if (names.length === 1 && names[0] === ALL_LINEAR) return ALL_LINEAR;
  return names;
}

/** True for the LoRA inits that rewrite the base weight (PiSSA, OLoRA, LoftQ). */
export function rewritesBase(s: TrainSettings): boolean {
  return /^(pissa|olora|loftq)/.test(s.loraInit);
}

/**
 * Wraps `model` (quantized first for QLoRA) in `s.method`. A PiSSA, OLoRA or LoftQ init
 * reads the full-precision base, so it runs first and QLoRA quantizes after it (as the
 * finetune CLI does; LoftQ's base already sits on NF4's grid, kept without double quantization).
 */
export async function attachMethod(model: CausalLM, s: TrainSettings, log: (line: string) => void = () => {}): Promise<Adapted> {
  const rewriting = rewritesBase(s);
  if (s.method === 'qlora' && !rewriting) await quantizeModel(model, QLORA_QUANT);
  const targets = parseTargets(s.targets);
  const adapted = build(model, s.method, s, targets);
  if (rewriting && adapted.kind === 'tuner') {
    const layers = await adapted.peft.initLoraFromBase();
    log(`${s.loraInit}: initialised ${layers.length} LoRA layers from the base weights (the base keeps the residual)`);
    if (s.method === 'qlora') {
      // After LoRA wraps the head its linear sits at lm_head.base_layer: full precision, as QLoRA leaves it.
      await quantizeModel(model, { ...QLORA_QUANT, doubleQuant: s.loraInit !== 'loftq', skip: ['lm_head', 'lm_head.base_layer'] });
    }
  }
  return adapted;
}

/** `s.loraInit` as LoRA config fields. */
function loraInit(s: TrainSettings): Pick<LoraConfig, 'initLoraWeights' | 'loftqConfig'> {
  if (s.loraInit === 'default') return {};
  if (s.loraInit === 'loftq') return { initLoraWeights: 'loftq', loftqConfig: { loftqBits: 4, loftqIter: s.loftqIter } };
  return { initLoraWeights: s.loraInit as LoraConfig['initLoraWeights'] };
}

function build(model: CausalLM, method: MethodName, s: TrainSettings, targets: string[] | string | undefined): Adapted {
  switch (method) {
    case 'lora':
    case 'qlora':
    case 'dora': {
      const lora: LoraConfig = { peftType: 'LORA', r: s.rank, loraAlpha: s.alpha, targetModules: targets ?? ALL_LINEAR, useDora: method === 'dora', useRslora: s.useRslora, ...loraInit(s) };
      return { kind: 'tuner', peft: getPeftModel(model, lora) };
    }
    case 'ia3': {
      const ia3: IA3Config = { peftType: 'IA3', ...(targets ? { targetModules: targets } : {}) };
      return { kind: 'tuner', peft: getPeftModel(model, ia3) };
    }
    case 'prompt': {
      // Rows of random vocabulary embeddings start the virtual tokens at the scale of real ones.
      const prompt: PromptTuningConfig = { peftType: 'PROMPT_TUNING', numVirtualTokens: s.numVirtualTokens, promptTuningInit: 'SAMPLE_VOCAB' };
      return { kind: 'prompt', peft: getPeftModel(model, prompt) };
    }
    case 'prefix': {
      const prefix: PrefixTuningConfig = { peftType: 'PREFIX_TUNING', numVirtualTokens: s.numVirtualTokens };
      return { kind: 'prompt', peft: getPeftModel(model, prefix) };
    }
    case 'p-tuning': {
      const pTuning: PTuningConfig = {
        peftType: 'P_TUNING',
        numVirtualTokens: s.numVirtualTokens,
        encoderReparameterizationType: s.encoder === 'lstm' ? 'LSTM' : 'MLP',
        ...(s.encoderHiddenSize > 0 ? { encoderHiddenSize: s.encoderHiddenSize } : {}),
      };
      return { kind: 'prompt', peft: getPeftModel(model, pTuning) };
    }
    case 'adapter-houlsby':
    case 'adapter-pfeiffer':
    case 'adapter-parallel': {
      // Target modules do not apply: the adapters sit at the attention and feed-forward sublayers.
      const bottleneck: BottleneckConfig = { peftType: 'BOTTLENECK', ...BOTTLENECK_PLACEMENTS[method], reductionFactor: s.reductionFactor, nonLinearity: s.nonLinearity };
      return { kind: 'tuner', peft: getPeftModel(model, bottleneck) };
    }
  }
}
