/**
 * Loading real-size checkpoints with `fromPretrained`, from the cache of checkpoints with
 * released models' exact shapes that `tools/golden/real_shapes.py` writes (seeded random
 * weights saved by transformers; too large to commit). Each row reports the load's time,
 * its peak device bytes in total and by tag (above what earlier rows left alive), the
 * loaded model's bytes, and the host's peak resident set during the load (sampled every
 * 20 ms and at the end, above the RSS before it): the checkpoint streams from its file one
 * tensor at a time, so the host should not hold the whole file.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CausalLM, causalLMFromConfig, fromPretrained, loadCausalLMWeights, openCheckpoint, openSource, parseSafetensors } from '@webpeft/nn';
import { Linear4bit, quantizeOnLoad } from '@webpeft/quant';
import { MEMORY_TAGS, type MemoryTag, getBackend, memory, resetPeakMemory, sync } from '@webpeft/tensor';
import { type RowResult, registerRow } from '../table.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const mib = (b: number) => (b / 2 ** 20).toFixed(1);

/** The cache folder of one model variant, or an error naming the command that builds it. */
function checkpointDir(model: string, variant: string): string {
  const root = process.env.WEBPEFT_REAL_SHAPES_DIR || join(REPO_ROOT, '.cache', 'real-shapes');
  const dir = join(root, model, variant);
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`no ${model}/${variant} checkpoint in ${root}: build it with \`.venv-golden/bin/python tools/golden/real_shapes.py --only ${model}\` (or \`bash .ci/real-shapes.sh\` for the whole cache)`);
  }
  return dir;
}

/** Largest process RSS seen while `fn` runs, sampled every 20 ms and once at the end. */
async function withRssPeak<T>(fn: () => Promise<T>): Promise<{ value: T; rssBefore: number; rssPeak: number }> {
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const timer = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 20);
  try {
    const value = await fn();
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    return { value, rssBefore, rssPeak };
  } finally {
    clearInterval(timer);
  }
}

/** Loads with `load`, measuring time, device peak (total and by tag), final bytes and host RSS peak. */
async function measureLoad(load: () => Promise<CausalLM>): Promise<{ model: CausalLM; ms: number; result: Omit<RowResult, 'oursMs' | 'note'>; finalBytes: number }> {
  const before = memory();
  resetPeakMemory();
  const t0 = performance.now();
  const { value: model, rssBefore, rssPeak } = await withRssPeak(async () => {
    const m = await load();
    await sync();
    return m;
  });
  const ms = performance.now() - t0;
  const after = memory();
  const peakBytesByTag = Object.fromEntries(MEMORY_TAGS.map((t) => [t, after.peakBytesByTag[t] - before.bytesByTag[t]])) as Record<MemoryTag, number>;
  const finalBytes = after.liveBytes - before.liveBytes;
  return { model, ms, finalBytes, result: { peakBytes: after.peakBytes - before.liveBytes, peakBytesByTag, finalBytes, hostRssPeakBytes: rssPeak - rssBefore } };
}

const QWEN = 'qwen2.5-0.5b';

registerRow({
  group: 'loading',
  name: 'Qwen2.5-0.5B-shape load with quantize-on-load',
  async run() {
    const dir = checkpointDir(QWEN, 'bf16');
    const dtype = getBackend().capabilities.f16 ? 'f16' : 'f32';
    const { model, ms, finalBytes, result } = await measureLoad(
      async () => (await fromPretrained(dir, { dtype, tokenizer: false, quantize: quantizeOnLoad({ quantType: 'nf4', doubleQuant: true, computeDtype: dtype }) })).model,
    );
    try {
      // The largest single weight as the load holds it on the device: a full-precision
      // weight in the model's dtype, or a quantized layer's weight decoded to f32.
      const itemBytes = dtype === 'f16' ? 2 : 4;
      const quantized = new Set(model.namedModules().flatMap(([path, m]) => (m instanceof Linear4bit ? [`${path}.weight`] : [])));
      const ckpt = await openCheckpoint(openSource(dir));
      let largestWeightBytes = 0;
      for (const [key, info] of ckpt.tensors) {
        const n = info.shape.reduce((a, b) => a * b, 1);
        largestWeightBytes = Math.max(largestWeightBytes, n * (quantized.has(key) ? 4 : itemBytes));
      }
      const peak = result.peakBytes!;
      const tags = MEMORY_TAGS.map((t) => `${t} ${mib(result.peakBytesByTag![t])}`).join(', ');
      const holds = peak <= finalBytes + largestWeightBytes;
      return {
        oursMs: ms,
        ...result,
        largestWeightBytes,
        note:
          `bf16 checkpoint (1 file) -> nf4 + double quant, ${dtype} weights and compute; peak ${mib(peak)} MiB ${holds ? '<=' : '>'} final ${mib(finalBytes)} + largest weight ${mib(largestWeightBytes)} MiB ` +
          `(${holds ? 'the claim holds' : 'the claim FAILS'}); host RSS peak +${mib(result.hostRssPeakBytes!)} MiB; by tag: ${tags}`,
      };
    } finally {
      model.dispose();
    }
  },
});

registerRow({
  group: 'loading',
  name: 'SmolLM2-135M-shape load, f32 checkpoint',
  async run() {
    const dir = checkpointDir('smollm2-135m', 'f32');
    // The baseline is the load as it was before streaming: the whole file read into host
    // memory, the model built with its random init, then every weight copied over it.
    const base = await measureLoad(async () => {
      const rawConfig = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const { tensors } = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))), 'model.safetensors');
      const model = causalLMFromConfig(rawConfig);
      loadCausalLMWeights(model, tensors);
      return model;
    });
    base.model.dispose();
    const ours = await measureLoad(async () => (await fromPretrained(dir, { tokenizer: false })).model);
    ours.model.dispose();
    const { result } = ours;
    return {
      oursMs: ours.ms,
      baselineMs: base.ms,
      baselineName: 'whole file read + random init',
      ...result,
      baselineHostRssPeakBytes: base.result.hostRssPeakBytes,
      note:
        `f32 weights (1 file, ${mib(ours.finalBytes)} MiB); peak ${mib(result.peakBytes!)} MiB (baseline ${mib(base.result.peakBytes!)}); ` +
        `host RSS peak +${mib(result.hostRssPeakBytes!)} MiB (baseline +${mib(base.result.hostRssPeakBytes!)}; on a software adapter device buffers are host memory too)`,
    };
  },
});
