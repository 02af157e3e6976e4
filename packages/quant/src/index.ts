/**
 * `@webpeft/quant`: NF4/FP4 and 8-bit dynamic codecs byte-identical to an independent
 * implementation of bitsandbytes' rules (tools/golden/quant_reference.py), double quantization, the bitsandbytes/transformers state format, and the fused
 * 4-bit dequant-matmul op.
 * @packageDocumentation
 */
export {
  type QuantType,
  NF4_CODE,
  FP4_CODE,
  NF4_PIVOTS,
  FP4_PIVOTS,
  FP4_RANK_TO_CODE,
  codeFor,
  createDynamicMap,
} from './codebooks.js';
export { DYNAMIC_SIGNED, DYNAMIC_UNSIGNED, codeTensor } from './code-tensors.js';
export {
  code4bit,
  code8bit,
  quantize4bitHost,
  dequantize4bitHost,
  quantizeBlockwiseHost,
  dequantizeBlockwiseHost,
  fixedOrderMean,
} from './cpu-codecs.js';
export {
  BLOCKSIZES_4BIT,
  NESTED_BLOCKSIZE,
  type Packed4bit,
  type Blockwise8bit,
  type QuantizeBlockwiseOptions,
  type NestedAbsmax,
  quantize4bitRaw,
  dequantize4bitRaw,
  quantizeBlockwise,
  dequantizeBlockwise,
  doubleQuantize,
  restoreAbsmax,
} from './blockwise.js';
export { type Quantize4bitOptions, type Quantized4bit, quantize4bit, dequantize4bit, withQuantState } from './quantize-4bit.js';
export { QuantState, type QuantStateInit, type RecordArray, type RecordDType } from './quant-state.js';
export { pythonJson, pythonFloatRepr } from './python-json.js';
export { bytesToWords, tensorBytes } from './host-bytes.js';
export { type Weight4bit, linear4bit, weightInputs } from './ops/linear-4bit.js';
export type { Linear4bitAttrs } from './ops/linear-4bit-op.js';
export type { BlocksizeAttrs, Quantize4bitAttrs, DequantizeAttrs, Dequantize4bitAttrs } from './ops/codec-ops.js';
export { registerLinear4bitOps } from './ops/register.js';
export { type Linear4bitMatmulKernel, setLinear4bitMatmulKernel, linear4bitMatmulKernelFor } from './ops/linear-4bit-webgpu.js';
export { registerCodecOps } from './ops/register-codecs.js';
export { dequantizedWeight } from './ops/linear-4bit-composite.js';
export { Linear4bit, type Linear4bitOptions } from './modules/linear-4bit.js';
export { quantizeModel, dequantizeModel, quantizeTargets, type QuantizeModelOptions, type QuantizeReport } from './modules/quantize-model.js';
export { quantizeOnLoad } from './modules/quantize-on-load.js';
export { bitsandbytesLayout } from './modules/bnb-layout.js';
export { type Bnb4bitConfig, readBnb4bitConfig, bnb4bitConfigJson } from './modules/bnb-config.js';
export { type WeightPieces, quantize4bitStreamed } from './quantize-4bit-streamed.js';
export { quantizedBytes, type QuantizedBytes } from './memory-estimate.js';
export * from './optim/index.js';
