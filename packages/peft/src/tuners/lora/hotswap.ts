import type { SourceInput } from '@webpeft/nn';
import type { PeftConfig } from '../../config.js';
import type { AdapterSource } from '../../io/file-access.js';
import { asSource, checkAdapterWeights, copyAdapterWeights, expectedTensors, readAdapterConfig, readAdapterWeights } from '../../io/adapter-files.js';
import type { PeftModel } from '../../peft-model.js';
import { getTunerMethod } from '../../registry.js';
import { type ResolvedLoraConfig, isBaseRewritingInit, loraScaling } from './config.js';
import { LoraEmbedding } from './embedding.js';
import { LoraLinear, loraLayerOptions } from './linear.js';

/**
 * A hot-swap that cannot be done: the configs differ in a field PEFT requires equal
 * (`field`), the new adapter targets other modules or has other shapes, or the adapter
 * is merged. Nothing was changed.
 */
export class HotswapError extends Error {
  constructor(
    message: string,
    /** The adapter that was to be replaced. */
    readonly adapterName: string,
    /** The config field (our camelCase name) that differs, when one is to blame. */
    readonly field?: string,
  ) {
    super(`hotswapAdapter('${adapterName}'): ${message}`);
    this.name = 'HotswapError';
  }
}

/** The config fields PEFT 0.21 requires equal for a LoRA hot-swap (`CONFIG_KEYS_TO_CHECK`), ours and PEFT's names. */
const FIELDS_TO_MATCH: readonly (readonly [keyof ResolvedLoraConfig, string])[] = [
  ['useRslora', 'use_rslora'],
  ['loraDropout', 'lora_dropout'],
  ['alphaPattern', 'alpha_pattern'],
  ['useDora', 'use_dora'],
];

/** Options of {@link hotswapAdapter}. */
export interface HotswapOptions {
  /** Folder inside the source holding the adapter files (as `loadAdapter`'s `subfolder`). */
  subfolder?: string;
}

/**
 * PEFT's `hotswap_adapter`: replaces the weights of the loaded LoRA adapter `adapterName`
 * with those of the adapter files in `input`, in place (the same tensors, no re-wrapping,
 * no new layers), and takes over the new file's scaling (`lora_alpha / r`, per module with
 * the patterns). The adapter keeps its name, activity and inference mode.
 *
 * Compatible means, as in PEFT: both LoRA, equal `use_rslora`, `lora_dropout`,
 * `alpha_pattern` and `use_dora`; and the new adapter targets exactly the same modules with
 * the same tensor shapes (rank differences change shapes and are refused: PEFT's rank
 * padding, `prepare_model_for_compiled_hotswap`, is not supported). Transactional: every
 * check runs and every tensor is decoded before anything is copied; on any error
 * ({@link HotswapError}, a weights mismatch naming the file and keys) the model is unchanged.
 *
 * @example await hotswapAdapter(peft, memoryFiles(files), 'default');
 */
export async function hotswapAdapter(peft: PeftModel, input: AdapterSource | SourceInput, adapterName: string, options: HotswapOptions = {}): Promise<void> {
  const old = peft.peftConfig.get(adapterName);
  if (!old) throw new HotswapError(`no adapter '${adapterName}' (have: ${[...peft.peftConfig.keys()].join(', ') || 'none'})`, adapterName);
  const source = asSource(input);
  const subfolder = options.subfolder ?? '';
  const config = await readAdapterConfig(source, subfolder);
  const weights = await readAdapterWeights(source, subfolder);
  const resolved = checkCompatible(peft, adapterName, old, config);

  const layers = peft.base_model.tunerLayers().filter(([, l]) => l.hasAdapter(adapterName));
  const merged = layers.filter(([, l]) => l.mergedAdapters.includes(adapterName)).map(([p]) => p);
  if (merged.length > 0) throw new HotswapError(`the adapter is merged into the base weights of ${merged.join(', ')}; unmerge it first`, adapterName);

  // The new adapter as it would be built (shapes only), against the one in place and the file.
  const own = peft.adapterStateDict(adapterName);
  const current = expectedTensors(own);
  const planned = peft.planAdapter(planName(peft), config);
  const differences = [
    ...[...planned.keys()].filter((k) => !current.has(k)).map((k) => `${k} is new`),
    ...[...current.keys()].filter((k) => !planned.has(k)).map((k) => `${k} is not in the new adapter`),
    ...[...planned].filter(([k, e]) => current.has(k) && String(current.get(k)?.shape) !== String(e.shape)).map(([k, e]) => `${k} is [${String(current.get(k)?.shape)}] in place but [${String(e.shape)}] in the new adapter`),
  ];
  if (differences.length > 0) throw new HotswapError(`the new adapter must target the same modules with the same shapes (different ranks are not supported): ${differences.join('; ')}`, adapterName);
  checkAdapterWeights(planned, weights);

  const scalings = layers.map(([path, layer]) => {
    if (!(layer instanceof LoraLinear || layer instanceof LoraEmbedding)) throw new HotswapError(`layer ${path} is not a LoRA layer`, adapterName);
    const o = loraLayerOptions(resolved, path);
    return [layer, loraScaling(o.loraAlpha, o.r, o.useRslora)] as const;
  });
  // Commit: copyAdapterWeights decodes every tensor before assigning any.
  copyAdapterWeights(own, weights);
  for (const [layer, scaling] of scalings) {
    if (layer instanceof LoraLinear) layer.replaceAdapterSettings(adapterName, { ...layer.adapterSettings(adapterName), scaling });
    else layer.replaceAdapterSettings(adapterName, { ...layer.adapterSettings(adapterName), scaling });
  }
  peft.peftConfig.set(adapterName, { ...resolved, inferenceMode: old.inferenceMode });
  peft.refreshTrainable();
}

/** PEFT's `check_hotswap_configs_compatible` plus what our in-place copy needs; returns the new config resolved on the model. */
function checkCompatible(peft: PeftModel, adapterName: string, old: PeftConfig, config: PeftConfig): ResolvedLoraConfig {
  if (old.peftType !== 'LORA') throw new HotswapError(`hot-swapping supports LORA adapters only, the adapter in place is ${old.peftType}`, adapterName, 'peftType');
  if (config.peftType !== 'LORA') throw new HotswapError(`hot-swapping supports LORA adapters only, the new adapter is ${config.peftType}`, adapterName, 'peftType');
  const resolved = getTunerMethod('LORA', 'hotswapAdapter').resolveConfig(config, peft.model) as ResolvedLoraConfig;
  const before = old as ResolvedLoraConfig;
  for (const [field, peftName] of FIELDS_TO_MATCH) {
    const a = JSON.stringify(before[field]);
    const b = JSON.stringify(resolved[field]);
    if (a !== b) throw new HotswapError(`configs are incompatible: for ${peftName}, ${a} != ${b}`, adapterName, field);
  }
  if (isBaseRewritingInit(resolved.initLoraWeights)) {
    throw new HotswapError(`the new adapter's init_lora_weights ${JSON.stringify(resolved.initLoraWeights)} rewrites the base weights; load it with loadAdapter instead`, adapterName, 'initLoraWeights');
  }
  return resolved;
}

/** An adapter name the model does not use, for planning the new adapter's shapes. */
function planName(peft: PeftModel): string {
  let name = '__hotswap__';
  while (peft.peftConfig.has(name)) name += '_';
  return name;
}
