import type { TensorData } from '../../dtype.js';
import type { CpuKernelContext } from '../../kernel-context.js';
import type { Tensor } from '../../tensor.js';
import { BaseKernelContext } from '../base-kernel-context.js';
import { cpuData } from './cpu-data.js';

/** The cpu backend's kernel context: host array views of tensors. */
export class CpuContext extends BaseKernelContext implements CpuKernelContext {
  data(t: Tensor): TensorData {
    return cpuData(t);
  }
}
