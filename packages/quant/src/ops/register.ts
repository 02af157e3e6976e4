/**
 * Registration of every op of `@webpeft/quant`: the codec ops and the 4-bit linear ops
 * (kernels per backend, gradient, composite definition). The package has no import
 * side effects, so public entries call these first; registering twice is a no-op.
 */
import { registerComposite, registerGradient } from '@webpeft/tensor/kernel';
import { registerLinear4bitCpuKernels } from './linear-4bit-cpu.js';
import { linear4bitComposite, linear4bitGradInputComposite, linear4bitGradient } from './linear-4bit-composite.js';
import { registerLinear4bitWebGpuKernels } from './linear-4bit-webgpu.js';
import { registerCodecOps } from './register-codecs.js';

let registered = false;

/** Registers the kernels (cpu, webgpu), gradient and composite of the 4-bit linear ops, and the codec ops they use (idempotent). */
export function registerLinear4bitOps(): void {
  if (registered) return;
  registered = true;
  registerCodecOps();
  registerLinear4bitCpuKernels();
  registerLinear4bitWebGpuKernels();
  registerGradient('Linear4bit', linear4bitGradient);
  registerComposite('Linear4bit', linear4bitComposite);
  registerComposite('Linear4bitGradInput', linear4bitGradInputComposite);
}
