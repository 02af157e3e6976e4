/**
 * Checkpoints with the exact shapes of SmolLM2-135M, Qwen2.5-0.5B and GPT-2 small (seeded
 * random weights, saved by transformers' `save_pretrained`) load with `fromPretrained` on
 * webgpu and give transformers' logits. The checkpoints live in a cache built by
 * `tools/golden/real_shapes.py` (the real-shapes step of `.ci/run`; see
 * `@webpeft/test-utils/real-shapes`: a missing cache fails in CI and skips, with the
 * command, elsewhere); the committed golden holds transformers' logits at sampled
 * vocabulary indices and float64 statistics of every full row, so the whole row is
 * compared without committing it.
 *
 * f32 logits must be within 1e-4 of transformers'; f16 ones within twice PyTorch's own
 * max |f16 - f32| on the same weights. Everything runs on webgpu: GPT-2's f32 embedding
 * (154 MB) and Qwen2.5's (544 MB in f32, 272 MB in f16) exceed lavapipe's 128 MiB storage
 * binding and are held in row chunks, their tied lm_head a matmul across the chunks.
 * Between them the cases read every kind of checkpoint: f32 in one file (GPT-2), f32
 * shards (SmolLM2), bf16 in one file (SmolLM2) and bf16 shards (Qwen2.5), decoded to f32
 * and to f16. One model is alive at a time.
 */
import { type BackendName, type Tensor, cast, getBackend, noGrad, tensor } from '@webpeft/tensor';
import { initBackends } from '@webpeft/test-utils';
import { type RealShapeModel, type RealShapeVariant, realShapeCheckpoint } from '@webpeft/test-utils/real-shapes';
import { beforeAll, describe, expect, it } from 'vitest';
import { fromPretrained } from '../index.js';
import { b64F32 } from './fixtures/models/fixture.js';
import smollm2 from './fixtures/real-shapes/smollm2-135m.json' with { type: 'json' };
import qwen25 from './fixtures/real-shapes/qwen2.5-0.5b.json' with { type: 'json' };
import gpt2 from './fixtures/real-shapes/gpt2.json' with { type: 'json' };

/** What tools/golden/real_shapes.py records per model. */
interface RealShapeGolden {
  input_ids: number[][];
  vocab_size: number;
  sample_indices: number[];
  /** f32 `[T, sample_indices.length]`, base64. */
  logits_sample: string;
  /** Per position, float64 statistics of transformers' full f32 row. */
  rows: { max: number; min: number; argmax: number; sum: number; weighted: number }[];
  f16MaxAbsDiff: number;
}

const F32_TOL = 1e-4;
/** Our f16 error may be PyTorch's own f16 error again, in a different rounding order. */
const F16_FACTOR = 2;

interface Case {
  model: RealShapeModel;
  golden: RealShapeGolden;
  /** The checkpoints loaded in f32 (each of the model's variants in the cache). */
  f32: RealShapeVariant[];
  /** The checkpoint loaded in f16 (bf16 where there is one: bf16 -> f16 is the path a user takes). */
  f16: RealShapeVariant;
}

const CASES: Case[] = [
  { model: 'smollm2-135m', golden: smollm2, f32: ['f32-sharded', 'bf16'], f16: 'bf16' },
  { model: 'gpt2', golden: gpt2, f32: ['f32'], f16: 'f32' },
  { model: 'qwen2.5-0.5b', golden: qwen25, f32: ['bf16-sharded'], f16: 'bf16-sharded' },
];

let backends: BackendName[] = [];
beforeAll(async () => {
  backends = await initBackends();
});

/**
 * The wanted backend, or the cpu reference where this machine has no WebGPU adapter (never
 * in CI: initBackends throws there) or, for f16, an adapter without `shader-f16`.
 */
function usable(b: BackendName, dtype: 'f32' | 'f16'): BackendName {
  return backends.includes(b) && (dtype === 'f32' || getBackend(b).capabilities.f16) ? b : 'cpu';
}

/** Loads `dir` on `backend`, runs the golden's input ids without a tape and returns the logits as f32. */
async function logitsOf(dir: string, backend: BackendName, dtype: 'f32' | 'f16', g: RealShapeGolden): Promise<Float32Array> {
  const { model } = await fromPretrained(dir, { backend, dtype, tokenizer: false });
  try {
    for (const [key, p] of model.namedParameters()) expect(p.dtype, key).toBe(dtype);
    const ids = g.input_ids;
    const inputIds = tensor(Int32Array.from(ids.flat()), [ids.length, ids[0].length], { dtype: 'i32', backend });
    const logits = noGrad(() => model.forward({ inputIds }).logits);
    inputIds.dispose();
    const wide: Tensor = logits.dtype === 'f32' ? logits : cast(logits, 'f32');
    const data = (await wide.data()) as Float32Array;
    if (wide !== logits) wide.dispose();
    logits.dispose();
    return data;
  } finally {
    model.dispose();
  }
}

/** w_j of the golden's weighted checksum: ((j * 2654435761) mod 1009) / 1009 - 0.5 (exact in doubles). */
function checksumWeight(j: number): number {
  return ((j * 2654435761) % 1009) / 1009 - 0.5;
}

/**
 * Compares our logits `[1, T, V]` with the golden: every sampled entry within `tol`; per
 * row the max and min within `tol`, transformers' argmax within `2 tol` of our max, and
 * the row's sum and weighted sum within `tol * sqrt(V) * 4` (each entry's error is at
 * most `tol` and of either sign; the bound says they do not all lean one way, which a
 * shifted or permuted row would).
 */
function expectGoldenLogits(ours: Float32Array, g: RealShapeGolden, tol: number, label: string): number {
  const v = g.vocab_size;
  const t = g.input_ids[0].length;
  expect(ours.length, `${label}: logits length`).toBe(t * v);
  const sample = b64F32(g.logits_sample);
  const idx = g.sample_indices;
  let worst = 0;
  for (let p = 0; p < t; p++) {
    for (let s = 0; s < idx.length; s++) worst = Math.max(worst, Math.abs(ours[p * v + idx[s]] - sample[p * idx.length + s]));
  }
  expect(worst, `${label}: max |ours - transformers| at the sampled indices`).toBeLessThanOrEqual(tol);
  const rowTol = tol * Math.sqrt(v) * 4;
  g.rows.forEach((r, p) => {
    let max = -Infinity;
    let min = Infinity;
    let sum = 0;
    let weighted = 0;
    for (let j = 0; j < v; j++) {
      const x = ours[p * v + j];
      max = Math.max(max, x);
      min = Math.min(min, x);
      sum += x;
      weighted += x * checksumWeight(j);
    }
    expect(Math.abs(max - r.max), `${label} row ${p}: max`).toBeLessThanOrEqual(tol);
    expect(Math.abs(min - r.min), `${label} row ${p}: min`).toBeLessThanOrEqual(tol);
    expect(ours[p * v + r.argmax], `${label} row ${p}: transformers' argmax ${r.argmax}`).toBeGreaterThanOrEqual(max - 2 * tol);
    expect(Math.abs(sum - r.sum), `${label} row ${p}: sum of the row`).toBeLessThanOrEqual(rowTol);
    expect(Math.abs(weighted - r.weighted), `${label} row ${p}: weighted checksum`).toBeLessThanOrEqual(rowTol);
  });
  return worst;
}

// Each model is hundreds of MB to 2 GB: the loads of a file run one after another. The
// timeouts only guard against a hang: CI runs other files beside these on 2 cores.
describe.sequential('real-shape checkpoints match transformers', () => {
  for (const c of CASES) {
    for (const variant of c.f32) {
      it(`${c.model} ${variant} -> f32 on webgpu: logits within ${F32_TOL}`, async (ctx) => {
        const dir = realShapeCheckpoint(c.model, variant, ctx);
        const backend = usable('webgpu', 'f32');
        const ours = await logitsOf(dir, backend, 'f32', c.golden);
        expectGoldenLogits(ours, c.golden, F32_TOL, `${c.model} ${variant} ${backend}`);
      }, 1_200_000);
    }
    it(`${c.model} ${c.f16} -> f16 on webgpu: logits within ${F16_FACTOR}x PyTorch's own f16 error`, async (ctx) => {
      const dir = realShapeCheckpoint(c.model, c.f16, ctx);
      const backend = usable('webgpu', 'f16');
      const ours = await logitsOf(dir, backend, 'f16', c.golden);
      expectGoldenLogits(ours, c.golden, F16_FACTOR * c.golden.f16MaxAbsDiff, `${c.model} f16 ${backend}`);
    }, 1_200_000);
  }
});
