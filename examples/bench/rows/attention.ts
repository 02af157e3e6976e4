/**
 * Causal self-attention forward + backward at T = 1024 (batch 1, 4 query heads over 2 kv
 * heads, Dh 64), eager (scores `[B, H, T, L]`, softmax, matmuls: what the models run by
 * default) and fused (`fusedAttention`: tiled kernels that store no scores): time and the
 * peak device bytes above the inputs. The fused row's baseline is the eager row.
 */
import { attentionBias, scaledDotProductAttention } from '@webpeft/nn';
import { fusedAttention, manualSeed, memory, randn, resetPeakMemory, sum, sync, tidy } from '@webpeft/tensor';
import { registerRow } from '../table.ts';
import { medianMs } from '../timing.ts';

const [B, H, HKV, T, DH] = [1, 4, 2, 1024, 64];

const measured = new Map<string, { ms: number; peakBytes: number }>();

async function measure(impl: 'eager' | 'fused', runs: number): Promise<{ ms: number; peakBytes: number }> {
  manualSeed(0);
  const q = randn([B, H, T, DH], { requiresGrad: true });
  const k = randn([B, HKV, T, DH], { requiresGrad: true });
  const v = randn([B, HKV, T, DH], { requiresGrad: true });
  const step = async () => {
    tidy(() => {
      const o =
        impl === 'fused'
          ? fusedAttention(q, k, v, { causal: true })
          : scaledDotProductAttention(q, k, v, { bias: attentionBias(T, T, null, q.backend.name) });
      sum(o).backward();
    });
    for (const x of [q, k, v]) {
      x.grad?.dispose();
      x.grad = null;
    }
    await sync();
  };
  try {
    await step();
    const base = memory().liveBytes;
    resetPeakMemory();
    const ms = await medianMs(step, runs, 0);
    return { ms, peakBytes: memory().peakBytes - base };
  } finally {
    for (const x of [q, k, v]) x.dispose();
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

for (const impl of ['eager', 'fused'] as const) {
  registerRow({
    group: 'attention',
    name: `causal attention fwd+bwd, ${H}/${HKV} heads x ${T} tokens, Dh ${DH}, ${impl}`,
    async run(ctx) {
      const r = await measure(impl, Math.min(ctx.runs, 3));
      measured.set(impl, r);
      const eager = measured.get('eager');
      const ratio = impl === 'fused' && eager ? `; fused/eager: peak bytes ${(r.peakBytes / eager.peakBytes).toFixed(3)}, time ${(r.ms / eager.ms).toFixed(2)}` : '';
      return {
        oursMs: r.ms,
        ...(impl === 'fused' && eager ? { baselineMs: eager.ms, baselineName: 'eager' } : {}),
        peakBytes: r.peakBytes,
        note: `peak ${mib(r.peakBytes)} MiB above the inputs${ratio}`,
      };
    },
  });
}
