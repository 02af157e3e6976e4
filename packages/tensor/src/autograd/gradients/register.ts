import { registerElementwiseGradients } from './elementwise.js';
import { registerFusedGradients } from './fused.js';
import { registerReduceLayoutGradients } from './reduce-layout.js';

let registered = false;

/** Registers every gradient once (called by `init`). */
export function registerAllGradients(): void {
  if (registered) return;
  registered = true;
  registerElementwiseGradients();
  registerReduceLayoutGradients();
  registerFusedGradients();
}
