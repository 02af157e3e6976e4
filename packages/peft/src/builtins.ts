import { registerPeftMethod, registeredPeftTypes } from './registry.js';
import { loraMethod } from './tuners/lora/method.js';
import { ia3Method } from './tuners/ia3/method.js';

/**
 * Registers the built-in methods (LoRA, IA3) through the public registry, once.
 * Called by `getPeftModel` and the adapter loaders, so importing the package has no side effects.
 */
export function ensureBuiltinMethods(): void {
  const known = new Set(registeredPeftTypes());
  if (!known.has('LORA')) registerPeftMethod(loraMethod);
  if (!known.has('IA3')) registerPeftMethod(ia3Method);
}
