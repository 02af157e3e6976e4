/**
 * `@webpeft/optim`: optimizers (SGD, Adam, AdamW, Lion) with parameter groups, explicit
 * per-parameter state and exact resume; one fused WebGPU update kernel per optimizer;
 * Hugging Face learning-rate schedules; global-norm clipping; gradient accumulation.
 * @packageDocumentation
 */
export { Optimizer } from './optimizer.js';
export { type OptimizerOptions, type NonFinitePolicy, splitOptions, checkNonNegative } from './options.js';
export { NonFiniteGradientError, StepInFlightError } from './errors.js';
export type {
  BaseHyper,
  BufferLayout,
  FloatArray,
  NonFiniteParam,
  OptimizerStateDict,
  ParamGroup,
  ParamGroupSpec,
  ParamState,
  ParamsInput,
  SavedBuffer,
  SavedGroup,
  SavedParamState,
  StepReport,
} from './types.js';
export type { UpdateRule, Scalars } from './update-rule.js';
export type { UpdateItem, OptimizerUpdateArgs, NonFiniteFlagsArgs } from './optimizer-ops.js';
export { registerOptimizerOps } from './register.js';
export { nonFiniteIndices } from './non-finite.js';
export { SGD, sgdRule, type SgdHyper } from './sgd.js';
export { Adam, AdamW, adamL2Rule, adamwRule, validateAdamHyper, type AdamHyper, type AdamOptions } from './adam.js';
export { Lion, lionRule, type LionHyper } from './lion.js';
export {
  LambdaLr,
  constantSchedule,
  linearWithWarmup,
  cosineWithWarmup,
  constantLambda,
  linearLambda,
  cosineLambda,
  type LrLambda,
  type SchedulableOptimizer,
  type SchedulerStateDict,
  type WarmupOptions,
  type DecayOptions,
  type CosineOptions,
} from './schedules.js';
export { clipGradNorm, clipGradNormReport, type ClipGradNormOptions, type ClipReport } from './clip.js';
export { GradientAccumulator } from './accumulate.js';
export { flattenOptimizerState, unflattenOptimizerState, type FlatOptimizerState, type FlatOptimizerMeta } from './state-flat.js';
