/**
 * Test helpers shared by every package: the backend matrix (cpu + webgpu, in Node and
 * Chromium), closeness checks with readable failures, float64 gradient checks, seeded
 * random inputs, and leak checks (one per test through the `leak-check-setup.ts` setup file).
 */
export { backendsUnderTest, initBackends } from './backends.js';
export { base64Bytes } from './base64.js';
export { expectClose, maxRelError } from './close.js';
export { randomArray, randomInts, SeededRandom } from './random.js';
export { gradcheck, type GradcheckOptions } from './gradcheck.js';
export { liveCounts, expectNoLeak } from './leak.js';
export { takeData, takeArray, disposeAfterTest } from './take.js';
export { sgdStep } from './sgd-step.js';
export { type FuzzCase, mutatedText, snakeCase, unclearError } from './fuzz-corpus.js';
export {
  type LeakSnapshot,
  LeakError,
  leakSnapshot,
  leakGrowth,
  expectNoLeakSince,
  keepsStateAcrossTests,
  leakCheckOptedOut,
  knownLeak,
} from './leak-check.js';
