/**
 * The loss head of a training step, `crossEntropy(hidden @ W^T, labels)` with its
 * backward, fused (`linearCrossEntropy`: vocabulary chunks, no `[N, V]` logits) against
 * unfused (`matmul` + `crossEntropy`, the baseline) at 1024 tokens and a 32000 vocabulary
 * (the largest logits one storage binding holds on software Vulkan): time per step and
 * peak device bytes of each, the head's weight frozen (LoRA) and trainable (full
 * fine-tuning of a tied embedding).
 */
import { type Tensor, crossEntropy, linearCrossEntropy, matmul, memory, resetPeakMemory, sync, tensor, tidy } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

const [N, D, V] = [1024, 64, 32000];

interface Measured {
  ms: number;
  peakBytes: number;
}

async function measure(fused: boolean, trainHead: boolean, runs: number): Promise<Measured> {
  const before = memory();
  const hidden = tensor(Float32Array.from({ length: N * D }, (_, i) => Math.sin(i * 0.37)), [N, D], { requiresGrad: true });
  const weight = tensor(Float32Array.from({ length: V * D }, (_, i) => 0.1 * Math.cos(i * 0.11)), [V, D], { requiresGrad: trainHead });
  const labels = tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [N], { dtype: 'i32' });
  const step = async () => {
    const loss = tidy(() => (fused ? linearCrossEntropy(hidden, weight, labels) : crossEntropy(matmul(hidden, weight, { transposeB: true }), labels)));
    loss.backward();
    loss.dispose();
    for (const t of [hidden, weight]) {
      t.grad?.dispose();
      t.grad = null;
    }
    await sync();
  };
  try {
    await step();
    resetPeakMemory();
    const ms = await medianMs(step, runs, 0);
    return { ms, peakBytes: memory().peakBytes - before.liveBytes };
  } finally {
    for (const t of [hidden, weight, labels] as Tensor[]) t.dispose();
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

for (const trainHead of [false, true]) {
  registerRow({
    group: 'fused linear + cross-entropy',
    name: `loss head step, [${N} x ${D}] x [${V} x ${D}]^T, head ${trainHead ? 'trainable' : 'frozen'}`,
    async run(ctx) {
      const runs = Math.min(ctx.runs, 2);
      const fused = await measure(true, trainHead, runs);
      const unfused = await measure(false, trainHead, runs);
      return {
        oursMs: fused.ms,
        baselineMs: unfused.ms,
        baselineName: 'matmul + crossEntropy',
        peakBytes: fused.peakBytes,
        note: `peak MiB fused ${mib(fused.peakBytes)} vs unfused ${mib(unfused.peakBytes)} (${(unfused.peakBytes / fused.peakBytes).toFixed(1)}x lower)`,
      };
    },
  });
}
