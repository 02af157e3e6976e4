import { registerPeftMethod, registeredPeftTypes } from './registry.js';
import { loraMethod } from './tuners/lora/method.js';
import { ia3Method } from './tuners/ia3/method.js';
import { bottleneckMethod } from './tuners/bottleneck/method.js';
import { promptTuningMethod } from './prompt/prompt-tuning/method.js';
import { prefixTuningMethod } from './prompt/prefix-tuning/method.js';
import { pTuningMethod } from './prompt/p-tuning/method.js';

/**
 * Registers the built-in methods (LoRA, IA3, bottleneck adapters, prompt tuning, prefix tuning, P-tuning) through the
 * public registry, once. Called by `getPeftModel`, the model classes and the adapter
 * loaders, so importing the package has no side effects.
 */
export function ensureBuiltinMethods(): void {
  const known = new Set(registeredPeftTypes());
  if (!known.has('LORA')) registerPeftMethod(loraMethod);
  if (!known.has('IA3')) registerPeftMethod(ia3Method);
  if (!known.has('BOTTLENECK')) registerPeftMethod(bottleneckMethod);
  if (!known.has('PROMPT_TUNING')) registerPeftMethod(promptTuningMethod);
  if (!known.has('PREFIX_TUNING')) registerPeftMethod(prefixTuningMethod);
  if (!known.has('P_TUNING')) registerPeftMethod(pTuningMethod);
}
