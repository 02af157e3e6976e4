import { type CausalLMInput, type CausalLMOutput, type Embedding, type LayerKeyValues, Module } from '@webpeft/nn';
import { type Tensor, concat, expand, full, narrow, ones, permute, reshape, unsqueeze } from '@webpeft/tensor';
import { countParameters, formatTrainableParameters } from '../count.js';
import { ModuleDict } from '../tuners/containers.js';
import { saveAdapter } from '../io/adapter-files.js';
import type { AdapterTarget } from '../io/file-access.js';
import { backendOf } from '../tuners/backend-of.js';
import { type PrefixTuningConfig, type PromptTuningConfig, resolvePrefixTuningConfig, resolvePromptTuningConfig } from './config.js';
import { PrefixEncoder, PromptEmbedding } from './encoders.js';

/** A causal LM as prompt learning needs it (the `CausalLM` of `@webpeft/nn`). */
export interface PromptableModel extends Module {
  forward(input: CausalLMInput): CausalLMOutput;
  getInputEmbeddings(): Embedding;
}

type PromptConfig = PromptTuningConfig | PrefixTuningConfig;

/**
 * PEFT's `PeftModelForCausalLM` for prompt learning: the frozen model as `base_model`,
 * one encoder per adapter under `prompt_encoder.<name>`. Prompt tuning prepends the
 * learned rows to the input embeddings (labels get -100, the mask gets ones); prefix
 * tuning passes per-layer keys/values as `prefixKeyValues`.
 */
export class PromptLearningModel extends Module {
  readonly base_model: PromptableModel;
  readonly prompt_encoder: ModuleDict<PromptEmbedding | PrefixEncoder>;
  readonly peftConfig = new Map<string, PromptConfig>();
  private active = '';

  constructor(model: PromptableModel, config: PromptConfig, adapterName = 'default') {
    super();
    this.base_model = this.registerModule('base_model', model);
    this.prompt_encoder = this.registerModule('prompt_encoder', new ModuleDict());
    model.freeze();
    this.addAdapter(adapterName, config);
    this.setAdapter(adapterName);
  }

  get activeAdapter(): string {
    return this.active;
  }

  /** Adds an adapter (its encoder starts per the config's init). */
  addAdapter(name: string, config: PromptConfig): void {
    if (this.peftConfig.has(name)) throw new Error(`addAdapter: adapter '${name}' already exists`);
    const backend = backendOf(this.base_model);
    let encoder: PromptEmbedding | PrefixEncoder;
    let resolved: PromptConfig;
    if (config.peftType === 'PROMPT_TUNING') {
      resolved = resolvePromptTuningConfig(config, this.base_model);
      encoder = new PromptEmbedding(resolved, this.base_model.getInputEmbeddings(), backend);
    } else if (config.peftType === 'PREFIX_TUNING') {
      resolved = resolvePrefixTuningConfig(config, this.base_model);
      encoder = new PrefixEncoder(resolved, backend);
    } else throw new Error(`PromptLearningModel: ${(config as { peftType: string }).peftType} is not a prompt-learning method`);
    // The tokenizer was only needed for the init; it is not part of the saved config.
    const { tokenizer: _t, ...saved } = resolved as PromptTuningConfig;
    this.peftConfig.set(name, saved);
    this.prompt_encoder.set(name, encoder);
    this.setAdapter(this.active || name);
  }

  /** Makes `name` the adapter used by `forward`; only its encoder trains. */
  setAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new Error(`setAdapter: no adapter '${name}'`);
    this.active = name;
    for (const key of this.prompt_encoder.keys()) {
      const trainable = key === name && !this.peftConfig.get(key)!.inferenceMode;
      for (const p of this.prompt_encoder.get(key)!.parameters()) p.requiresGrad = trainable;
    }
  }

  /** The active adapter's encoder. */
  encoder(name = this.active): PromptEmbedding | PrefixEncoder {
    const e = this.prompt_encoder.get(name);
    if (!e) throw new Error(`no adapter '${name}'`);
    return e;
  }

  /** `model.forward` with the active adapter's prompt applied. */
  forward(input: CausalLMInput): CausalLMOutput {
    const config = this.peftConfig.get(this.active)!;
    const enc = this.encoder();
    if (config.peftType === 'PREFIX_TUNING') return this.base_model.forward({ ...input, prefixKeyValues: this.prefixKeyValues(enc as PrefixEncoder, input) });
    if (!input.inputIds) throw new Error('prompt tuning: forward needs inputIds');
    const ids = input.inputIds;
    const [B] = ids.shape;
    const P = config.numVirtualTokens * (config.numTransformerSubmodules ?? 1);
    const table = enc.forward();
    const row = unsqueeze(table, 0);
    const prompts = expand(row, [B, P, table.shape[1]]);
    const words = this.base_model.getInputEmbeddings().forward(ids);
    const inputsEmbeds = concat([prompts, words], 1);
    const backend = ids.backend.name;
    const created: Tensor[] = [table, row, prompts, words, inputsEmbeds];
    let labels = input.labels;
    if (labels) {
      const pre = full([B, P], -100, { dtype: 'i32', backend });
      labels = concat([pre, labels], 1);
      created.push(pre, labels);
    }
    let attentionMask = input.attentionMask;
    if (attentionMask) {
      const pre = ones([B, P], { dtype: attentionMask.dtype, backend });
      attentionMask = concat([pre, attentionMask], 1);
      created.push(pre, attentionMask);
    }
    try {
      return this.base_model.forward({ ...input, inputIds: undefined, inputsEmbeds, labels, attentionMask });
    } finally {
      for (const t of created) t.dispose();
    }
  }

  /** Per-layer `{key, value}` `[B, H_kv, P, Dh]` from the encoder output `[P, layers*2*H_kv*Dh]` (PEFT's layout). */
  private prefixKeyValues(enc: PrefixEncoder, input: CausalLMInput): LayerKeyValues[] {
    const config = this.peftConfig.get(this.active) as PrefixTuningConfig;
    const B = (input.inputIds ?? input.inputsEmbeds)!.shape[0];
    const L = config.numLayers as number;
    const kvHeads = config.numAttentionHeads as number;
    const headDim = (config.tokenDim as number) / kvHeads;
    const P = config.numVirtualTokens;
    const out = enc.forward();
    const split = reshape(out, [P, L * 2, kvHeads, headDim]);
    const perm = permute(split, [1, 2, 0, 3]); // [L*2, H_kv, P, Dh]
    const kv: LayerKeyValues[] = [];
    const part = (i: number) => {
      const n = narrow(perm, 0, i, 1);
      const e = expand(n, [B, kvHeads, P, headDim]);
      n.dispose();
      return e;
    };
    for (let l = 0; l < L; l++) kv.push({ key: part(2 * l), value: part(2 * l + 1) });
    for (const t of [out, split, perm]) t.dispose();
    return kv;
  }

  /** Trainable and total counts (PEFT's `get_nb_trainable_parameters`). */
  getNbTrainableParameters(): { trainable: number; all: number } {
    return countParameters(this);
  }

  /** Prints and returns PEFT's report line. */
  printTrainableParameters(log: (line: string) => void = console.log): string {
    const line = formatTrainableParameters(this.getNbTrainableParameters());
    log(line);
    return line;
  }

  /** Saves adapters (default: all) in PEFT's format (`prompt_embeddings`); `default` at the root, others in subfolders. */
  saveAdapter(target: AdapterTarget | string, options: { adapterNames?: string[] } = {}): Promise<void> {
    return saveAdapter(this, target, options);
  }

  /**
   * `{ prompt_embeddings }` as PEFT saves it: the encoder's output `[P, dim]`
   * (for prefix tuning with projection, the projected prefixes). A new tensor.
   */
  adapterStateDict(name = this.active): Map<string, Tensor> {
    return new Map([['prompt_embeddings', this.encoder(name).forward()]]);
  }
}
