import { type CausalLM, fromPretrained, memoryTarget, openSource, savePretrained } from '@webpeft/nn';
import { noGrad, tensor } from '@webpeft/tensor';
import { expectClose, initBackends, takeData } from '@webpeft/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import golden from './fixtures/merged_export_golden.json' with { type: 'json' };
import { checkLeaksPerTest } from './leak-check.js';
import { EXPORT_CASES, buildMerged } from './merged-export-cases.js';

checkLeaksPerTest();

// Reference: transformers' AutoModelForCausalLM loading the very folders savePretrained
// writes here (tools/golden/write-our-exports.ts + check_our_exports.py, which recorded
// each folder's SHA-256 and transformers' logits). Merged LoRA over GPT-2 (Conv1D layout
// restored from the Linears the dequantizing merge leaves) and LLaMA. Bound 1e-4 absolute.

interface GoldenCase {
  sha256: Record<string, string>;
  input_ids: number[][];
  logits_shape: number[];
  logits: string;
}
const CASES = golden.cases as Record<string, GoldenCase>;

beforeAll(async () => {
  await initBackends();
});

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes.slice().buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

function b64F32(s: string): Float32Array {
  const bin = atob(s);
  return new Float32Array(Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer);
}

async function logitsOf(model: CausalLM, rows: number[][]): Promise<Float32Array> {
  const ids = tensor(Int32Array.from(rows.flat()), [rows.length, rows[0].length], { dtype: 'i32', backend: 'cpu' });
  const out = await takeData(noGrad(() => model.forward({ inputIds: ids }).logits));
  ids.dispose();
  return out as Float32Array;
}

describe('merged LoRA exported with savePretrained loads in transformers with our logits', () => {
  for (const c of EXPORT_CASES) {
    it(c.name, async () => {
      const want = CASES[c.name];
      expect(want, `fixture case ${c.name}`).toBeDefined();
      const { model, rawConfig } = await buildMerged(c);
      const target = memoryTarget();
      await savePretrained(model, target, { config: rawConfig, maxShardBytes: c.maxShardBytes });
      // The folder transformers loaded is byte for byte the one written here.
      expect([...target.files.keys()].sort()).toEqual(Object.keys(want.sha256).sort());
      for (const [file, bytes] of target.files) expect(await sha256(bytes), `${c.name} ${file}`).toBe(want.sha256[file]);
      const ours = await logitsOf(model, want.input_ids);
      expectClose(ours, b64F32(want.logits), { rtol: 0, atol: 1e-4, label: `${c.name}: ours vs transformers on the exported folder` });
      // And it loads back with our fromPretrained to the same logits.
      const again = await fromPretrained(openSource(Object.fromEntries(target.files)), { backend: 'cpu' });
      expectClose(await logitsOf(again.model, want.input_ids), ours, { rtol: 0, atol: 1e-6, label: `${c.name}: reloaded export vs merged model` });
      for (const m of [model, again.model]) m.dispose();
    });
  }
});
