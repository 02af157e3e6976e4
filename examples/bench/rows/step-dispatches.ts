/**
 * Dispatches per training step of a small GPT-2 (4 layers, 128 wide, batch 4 x 64
 * tokens), and of a LLaMA of the same size (4 query and 2 key/value heads, SwiGLU 256
 * wide), for full fine-tuning, LoRA and QLoRA, counted with `profile()`, and the
 * dispatches one decoder layer adds (the same step with 4 and with 2 layers, the
 * difference halved: embeddings, head, loss and the optimizer's fixed part cancel).
 * AdamW throughout. The host time is the ops' own JavaScript (self times summed),
 * which on a fast GPU bounds the step.
 */
import { AdamW } from '@webpeft/optim';
import { type Profile, getBackend, profile, sync, tensor, tidy } from '@webpeft/tensor';
import { type Method, methodModel } from './method-model.ts';
import { registerRow } from '../table.ts';

const BATCH = 4;
const TOKENS = 64;
const LAYERS = 4;
/** Model families of the rows. */
export type Family = 'gpt2' | 'llama';
const config = (layers: number, family: Family): Record<string, unknown> =>
  family === 'gpt2'
    ? { model_type: 'gpt2', vocab_size: 1024, n_positions: 128, n_embd: 128, n_layer: layers, n_head: 4, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }
    : { model_type: 'llama', vocab_size: 1024, max_position_embeddings: 128, hidden_size: 128, intermediate_size: 256, num_hidden_layers: layers, num_attention_heads: 4, num_key_value_heads: 2 };

/** What one profiled step counted. */
export interface StepCounts {
  dispatches: number;
  submits: number;
  /** Bind groups created in the step (cache misses; 0 once buffers recur). */
  bindGroups: number;
  /** Self host milliseconds of all ops of the step. */
  opHostMs: number;
  /** Wall milliseconds of the step on the host (includes the optimizer's awaits). */
  wallMs: number;
  /** The ops with the most dispatches, `name x count`. */
  top: string;
}

/** Profiles one training step (after a warm-up step, so optimizer state exists) of `method` with `layers` decoder layers, in `dtype` (f16: weights, activations and the 4-bit layers' compute). */
export async function stepCounts(method: Method, layers: number, warm = 2, family: Family = 'gpt2', dtype: 'f32' | 'f16' = 'f32'): Promise<StepCounts> {
  const { model, net, params } = await methodModel(method, config(layers, family), dtype);
  const optimizer = new AdamW(params, { lr: 1e-4, weightDecay: 0 });
  const ids = new Int32Array(BATCH * TOKENS).map((_, i) => (i * 997) % 1024);
  const step = async () => {
    const loss = tidy(() => {
      const x = tensor(ids, [BATCH, TOKENS], { dtype: 'i32' });
      const l = net.forward({ inputIds: x, labels: x }).loss!;
      l.backward();
      return l;
    });
    await optimizer.step();
    optimizer.zeroGrad();
    loss.dispose();
  };
  try {
    for (let i = 0; i < warm; i++) {
      await step();
      await sync();
    }
    const p: Profile<void> = await profile(step);
    await sync();
    const ops = Object.entries(p.ops);
    const opHostMs = ops.reduce((s, [, o]) => s + o.hostMs, 0);
    const top = ops
      .filter(([, o]) => o.dispatches > 0)
      .sort((a, b) => b[1].dispatches - a[1].dispatches)
      .slice(0, 6)
      .map(([n, o]) => `${n} x${o.dispatches}`)
      .join(', ');
    return { dispatches: p.dispatches, submits: p.submits, bindGroups: p.bindGroups, opHostMs, wallMs: p.hostMs, top };
  } finally {
    optimizer.zeroGrad();
    optimizer.disposeState();
    model.dispose();
  }
}

const NAMES: Record<Method, string> = { full: 'full', lora: 'LoRA', qlora: 'QLoRA' };

const FAMILIES: Record<Family, string> = { gpt2: 'GPT-2', llama: 'LLaMA' };

// The f16 row: the 4-bit layers dequantize straight to f16 (no f32 transient, no Cast).
const VARIANTS = [
  ...(['gpt2', 'llama'] as const).flatMap((family) => (['full', 'lora', 'qlora'] as const).map((method) => ({ family, method, dtype: 'f32' as const }))),
  { family: 'llama' as const, method: 'qlora' as const, dtype: 'f16' as const },
];

for (const { family, method, dtype } of VARIANTS) {
  registerRow({
    group: 'dispatches',
    name: `dispatches per decoder layer, ${FAMILIES[family]} ${NAMES[method]} training step${dtype === 'f16' ? ', f16' : ''}`,
    async run() {
      if (dtype === 'f16' && !getBackend().capabilities.f16) throw new Error(`${FAMILIES[family]} f16 row: the adapter has no shader-f16, so f16 compute cannot run here`);
      const big = await stepCounts(method, LAYERS, 2, family, dtype);
      const small = await stepCounts(method, LAYERS / 2, 2, family, dtype);
      const dispatchesPerLayer = (big.dispatches - small.dispatches) / (LAYERS - LAYERS / 2);
      return {
        oursMs: big.wallMs,
        dispatchesPerStep: big.dispatches,
        dispatchesPerLayer,
        hostMsPerStep: big.opHostMs,
        note: `${LAYERS}x128 ${FAMILIES[family]}, ${BATCH}x${TOKENS} tokens: ${big.dispatches} dispatches/step (${dispatchesPerLayer} per layer), ${big.submits} submits, ${big.bindGroups} new bind groups, ${big.opHostMs.toFixed(1)} ms op host time; most: ${big.top}`,
      };
    },
  });
}
