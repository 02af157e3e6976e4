/**
 * 8-bit blockwise and paged optimizers (bitsandbytes `bnb.optim`): AdamW8bit, Adam8bit,
 * PagedAdamW (PagedAdamW32bit), PagedAdamW8bit, and the host reference of the 8-bit step.
 */
export { AdamW8bit, Adam8bit, PagedAdamW8bit, type Adam8bitOptions } from './adam-8bit.js';
export { PagedAdamW, PagedAdamW32bit, PAGED_MIN_ELEMENTS, type PagedAdamWOptions } from './paged-adamw.js';
export { type PagedOptions, type PagedStats } from './page-stream.js';
export { bnbAdamScalars, type BnbAdamScalars } from './bnb-scalars.js';
export { OPTIM_BLOCK, WORDS_PER_BLOCK, adam8bitBlockwiseHost, adam32bitBnbHost, quantize2D, stateViews, type State8bitViews } from './adam-8bit-host.js';
export type { Adam8bitStepArgs, PagedUpdateArgs } from './optim-ops.js';
export { registerQuantOptimOps } from './register.js';
