/**
 * Prints the memory of full fine-tuning, LoRA and QLoRA for LLaMA-7B and GPT-2 small,
 * computed from the models built on the meta backend. Run: `npx tsx examples/memory-report/main.ts`.
 */
import { init } from '@webpeft/tensor';
import { GPT2_SMALL, LLAMA_7B, type Precision, fourBitBreakdown, memoryReport } from './src/report.js';

const gb = (b: number) => `${(b / 1e9).toFixed(3)} GB`;

/** 16-bit weights and gradients with 16-bit Adam states: the rough table QLoRA papers quote. */
const HALF: Precision = { weightBytes: 2, gradBytes: 2, optimizerStateBytes: 2 };
/** What WebPEFT computes in today: f32 everywhere. */
const F32: Precision = { weightBytes: 4, gradBytes: 4, optimizerStateBytes: 4 };

async function main(): Promise<void> {
  await init({ backend: 'cpu' });
  for (const [name, config, targets] of [
    ['LLaMA-7B', LLAMA_7B, ['q_proj', 'v_proj']],
    ['GPT-2 small', GPT2_SMALL, ['c_attn']],
  ] as const) {
    for (const [label, precision] of [
      ['16-bit', HALF],
      ['f32', F32],
    ] as const) {
      console.log(`\n${name}, LoRA r=8 on ${targets.join(', ')}, ${label} weights/grads/Adam states (activations excluded)`);
      console.log('method  trainable params      weights        grads      optimizer        total');
      for (const r of memoryReport(config, { peftType: 'LORA', r: 8, loraAlpha: 16, targetModules: [...targets] }, precision)) {
        console.log(
          `${r.method.padEnd(6)}  ${r.trainableParams.toLocaleString('en-US').padStart(16)}  ${gb(r.weights).padStart(11)}  ${gb(r.grads).padStart(11)}  ${gb(r.optimizer).padStart(13)}  ${gb(r.total).padStart(11)}`,
        );
      }
    }
    const b = fourBitBreakdown(config);
    console.log(
      `QLoRA weights: 4-bit ${gb(b.packed)}, constants ${gb(b.constantsDq)} with double quantization (${gb(b.constantsNoDq)} without), 16-bit embeddings and head ${gb(b.embeddings16bit)}, 16-bit norms and biases ${gb(b.other16bit)}`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
