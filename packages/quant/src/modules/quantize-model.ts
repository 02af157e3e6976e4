import { Conv1D, Linear, type Module } from '@webpeft/nn';
import { BYTES_PER_ELEMENT, type Tensor, assign, noGrad } from '@webpeft/tensor';
import type { QuantType } from '../codebooks.js';
import { Linear4bit } from './linear-4bit.js';

/** Options of {@link quantizeModel}. */
export interface QuantizeModelOptions {
  /** 'nf4' (default) or 'fp4'. */
  quantType?: QuantType;
  /** Elements per absmax block (default 64). */
  blockSize?: number;
  /** Double quantization of the absmax constants (default true). */
  doubleQuant?: boolean;
  /**
   * Dtype of the compute (bitsandbytes' `compute_dtype`, default f32): 'f16' dequantizes
   * each weight to f16 and runs the f16 matmul (f32 accumulation); needs a backend with f16.
   */
  computeDtype?: 'f32' | 'f16';
  /** Module paths (exact or dotted suffix) left in full precision (default `['lm_head']`). */
  skip?: readonly string[];
}

/** What {@link quantizeModel} changed. */
export interface QuantizeReport {
  /** Paths of the layers now stored in 4 bits. */
  layers: string[];
  /** Bytes of their full-precision weights before. */
  bytesBefore: number;
  /** Bytes of their packed weights and quantization constants after. */
  bytesAfter: number;
}

/**
 * Whether `path` is one of `patterns` (exact or dotted suffix). An adapter wrapper's
 * `base_layer` (PEFT's name for the layer a LoRA/IA3 module wraps) counts as the wrapped
 * module: `lm_head.base_layer` is skipped by `lm_head`, as transformers' bitsandbytes
 * integration, which matches names by containment, skips it too.
 */
function matches(path: string, patterns: readonly string[]): boolean {
  const unwrapped = path.replace(/\.base_layer(?=\.|$)/g, '');
  return patterns.some((p) => [path, unwrapped].some((q) => q === p || q.endsWith(`.${p}`)));
}

/**
 * Paths of the layers {@link quantizeModel} (and `quantizeOnLoad`) store in 4 bits: every
 * `Linear` and GPT-2 `Conv1D` except those matching `skip` (exact path or dotted suffix)
 * and those whose weight another module shares (a head tied to the embedding, which
 * transformers' bitsandbytes integration keeps in full precision too).
 */
export function quantizeTargets(model: Module, skip: readonly string[] = ['lm_head']): string[] {
  const owners = new Map<Tensor, number>();
  for (const m of model.modules()) for (const [, p] of m.ownParameters()) owners.set(p, (owners.get(p) ?? 0) + 1);
  return model
    .namedModules()
    .filter(([path, m]) => path !== '' && (m instanceof Linear || m instanceof Conv1D) && !matches(path, skip) && owners.get(m.weight) === 1)
    .map(([path]) => path);
}

function bytesOf(t: Tensor): number {
  return t.size * BYTES_PER_ELEMENT[t.dtype];
}

/**
 * Replaces every `Linear` and GPT-2 `Conv1D` of `model` (except `skip` and a tied head,
 * see {@link quantizeTargets}) with a frozen
 * {@link Linear4bit}, frees the full-precision weights, and reports bytes before and
 * after. Embeddings and norms stay as they are. Returns the same model.
 *
 * @example
 * const report = await quantizeModel(model, { quantType: 'nf4', doubleQuant: true });
 */
export async function quantizeModel<M extends Module>(model: M, options: QuantizeModelOptions = {}): Promise<{ model: M; report: QuantizeReport }> {
  const computeDtype = options.computeDtype ?? 'f32';
  if (computeDtype !== 'f32' && computeDtype !== 'f16') {
    throw new Error(`quantizeModel: computeDtype '${String(computeDtype)}' is not supported (use 'f32' or 'f16')`);
  }
  const backend = model.parameters()[0]?.backend;
  if (computeDtype === 'f16' && backend && !backend.capabilities.f16) {
    throw new Error(`quantizeModel: computeDtype 'f16' needs a backend with f16; '${backend.name}' has none (use 'f32')`);
  }
  const skip = options.skip ?? ['lm_head'];
  const report: QuantizeReport = { layers: [], bytesBefore: 0, bytesAfter: 0 };
  for (const path of quantizeTargets(model, skip)) {
    const layer = model.getSubmodule(path);
    const linear = layer as Linear | Conv1D;
    const q = await Linear4bit.fromLinear(linear, {
      quantType: options.quantType,
      blockSize: options.blockSize,
      doubleQuant: options.doubleQuant,
      computeDtype,
      name: `${path}.weight`,
    });
    q.requiresGrad_(false);
    model.replaceSubmodule(path, q);
    report.layers.push(path);
    report.bytesBefore += bytesOf(linear.weight);
    report.bytesAfter += bytesOf(q.packedWeight) + q.quantState.ownedTensors().reduce((n, t) => n + bytesOf(t), 0);
    linear.weight.dispose();
  }
  return { model, report };
}

/**
 * Replaces every {@link Linear4bit} of `model` with a full-precision `Linear` holding
 * the dequantized weight `[out, in]` (Conv1D layers come back as `Linear`, as in
 * transformers' dequantization). Returns the same model.
 */
export function dequantizeModel<M extends Module>(model: M): M {
  const targets = model.namedModules().filter(([, m]) => m instanceof Linear4bit) as [string, Linear4bit][];
  for (const [path, q] of targets) {
    const weight = noGrad(() => q.dequantizedWeight());
    const backend = weight.backend.name;
    const linear = new Linear(q.inFeatures, q.outFeatures, { bias: q.bias !== null, backend });
    noGrad(() => {
      linear.loadWeight(weight);
      if (q.bias && linear.bias) assign(linear.bias, q.bias);
    });
    weight.dispose();
    model.replaceSubmodule(path, linear);
    q.packedWeight.dispose();
    q.quantState.dispose();
    q.bias?.dispose(); // copied into the new Linear above
  }
  return model;
}
