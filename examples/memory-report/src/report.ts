import { type CausalLM, Embedding, type RawConfig, causalLMFromConfig, isLinearLike } from '@webpeft/nn';
import { type LoraConfig, getPeftModel } from '@webpeft/peft';
import { quantizedBytes } from '@webpeft/quant';

/** Bytes per element of each kind of state, e.g. 16-bit weights and f32 Adam states. */
export interface Precision {
  /** Weights that are not quantized (and the LoRA weights). */
  weightBytes: number;
  /** Gradients. */
  gradBytes: number;
  /** Each of Adam's two moments. */
  optimizerStateBytes: number;
}

/** The memory of one method, in bytes, by what it is for. */
export interface MethodMemory {
  method: 'full' | 'lora' | 'qlora';
  trainableParams: number;
  allParams: number;
  weights: number;
  grads: number;
  optimizer: number;
  total: number;
}

/** Parameter counts of a model built with shapes only. */
interface Counts {
  all: number;
  /** Elements of the linear layers that QLoRA quantizes (all but `lm_head`). */
  quantizable: number;
  /** Elements of each such layer (each has its own quantization constants). */
  quantizableWeights: number[];
  /** Elements of the input embeddings and an untied `lm_head`. */
  embeddingsAndHead: number;
}

function countModel(model: CausalLM): Counts {
  const quantizableWeights: number[] = [];
  const embeddingWeights = new Set<unknown>();
  let embeddingsAndHead = 0;
  for (const [path, m] of model.namedModules()) {
    const isHead = path === 'lm_head' || path.endsWith('.lm_head');
    if (m instanceof Embedding) {
      embeddingWeights.add(m.weight);
      embeddingsAndHead += m.weight.size;
    } else if (isHead && isLinearLike(m)) {
      // A tied head shares the embedding's tensor and is counted once.
      const w = (m as unknown as { weight?: unknown }).weight;
      if (!embeddingWeights.has(w)) embeddingsAndHead += m.inFeatures * m.outFeatures;
    } else if (path !== '' && isLinearLike(m)) quantizableWeights.push(m.inFeatures * m.outFeatures);
  }
  return { all: model.numParameters(), quantizable: quantizableWeights.reduce((a, b) => a + b, 0), quantizableWeights, embeddingsAndHead };
}

/**
 * Weights, gradients and AdamW state of full fine-tuning, LoRA and QLoRA (NF4 + double
 * quantization, block 64) for a Hugging Face `config`, from a model built on the
 * meta backend (every count is computed, none copied). Activations are not included:
 * they depend on batch and sequence length.
 */
export function memoryReport(config: RawConfig, lora: LoraConfig, precision: Precision): MethodMemory[] {
  const model = causalLMFromConfig(config, { backend: 'meta' });
  const counts = countModel(model);
  const peft = getPeftModel(model, lora);
  const { trainable: loraParams } = peft.getNbTrainableParameters();
  peft.dispose();
  const { weightBytes: w, gradBytes: g, optimizerStateBytes: s } = precision;
  const full = { weights: counts.all * w, grads: counts.all * g, optimizer: 2 * counts.all * s };
  const loraMem = { weights: (counts.all + loraParams) * w, grads: loraParams * g, optimizer: 2 * loraParams * s };
  const quant = counts.quantizableWeights.map((n) => quantizedBytes(n, { blockSize: 64, doubleQuant: true }));
  const fourBit = quant.reduce((a, q) => a + q.packed + q.constants, 0);
  const qlora = { weights: fourBit + (counts.all - counts.quantizable + loraParams) * w, grads: loraParams * g, optimizer: 2 * loraParams * s };
  const row = (method: MethodMemory['method'], trainableParams: number, m: { weights: number; grads: number; optimizer: number }): MethodMemory => ({
    method,
    trainableParams,
    allParams: method === 'full' ? counts.all : counts.all + loraParams,
    ...m,
    total: m.weights + m.grads + m.optimizer,
  });
  return [row('full', counts.all, full), row('lora', loraParams, loraMem), row('qlora', loraParams, qlora)];
}

/**
 * QLoRA's weights in parts: packed 4-bit codes, their constants with and without double
 * quantization, 16-bit embeddings and head, and the other 16-bit parameters (norms, biases).
 */
export function fourBitBreakdown(config: RawConfig): { packed: number; constantsDq: number; constantsNoDq: number; embeddings16bit: number; other16bit: number } {
  const model = causalLMFromConfig(config, { backend: 'meta' });
  const counts = countModel(model);
  model.dispose();
  let packed = 0;
  let constantsDq = 0;
  let constantsNoDq = 0;
  for (const n of counts.quantizableWeights) {
    const dq = quantizedBytes(n, { doubleQuant: true });
    packed += dq.packed;
    constantsDq += dq.constants;
    constantsNoDq += quantizedBytes(n, { doubleQuant: false }).constants;
  }
  return {
    packed,
    constantsDq,
    constantsNoDq,
    embeddings16bit: counts.embeddingsAndHead * 2,
    other16bit: (counts.all - counts.quantizable - counts.embeddingsAndHead) * 2,
  };
}

/** LLaMA-7B's config (Touvron et al. 2023), as in its Hugging Face `config.json`. */
export const LLAMA_7B: RawConfig = {
  model_type: 'llama',
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 32000,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};

/** GPT-2 small's config (124M). */
export const GPT2_SMALL: RawConfig = {
  model_type: 'gpt2',
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
};
