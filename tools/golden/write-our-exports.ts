/**
 * The first half of the merged-export check (tools/golden/README.md): checkpoint folders
 * written by OUR `savePretrained` after `mergeAndUnload({ dequantize: true })`, for
 * transformers to load. For every case of packages/peft/src/__tests__/merged-export-cases.ts,
 * writes `<out>/<case>/` (config.json, model.safetensors or its shards) and `case.json` with the fixed
 * input ids and our logits. check_our_exports.py then loads each with transformers.
 *
 * Run (after `npx tsc -b tsconfig.json`): npx tsx tools/golden/write-our-exports.ts <out dir>
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { savePretrained } from '@webpeft/nn';
import { init, noGrad, tensor } from '@webpeft/tensor';
import { EXPORT_CASES, buildMerged, exportInputIds } from '../../packages/peft/src/__tests__/merged-export-cases.js';

async function main(): Promise<void> {
  const out = process.argv[2];
  if (!out) throw new Error('usage: npx tsx tools/golden/write-our-exports.ts <out dir>');
  await init({ backend: 'cpu' });
  for (const c of EXPORT_CASES) {
    const { model, rawConfig } = await buildMerged(c);
    const dir = join(out, c.name);
    await savePretrained(model, dir, { config: rawConfig, overwrite: true, maxShardBytes: c.maxShardBytes });
    const inputIds = exportInputIds(model.config.vocab_size);
    const ids = tensor(Int32Array.from(inputIds.flat()), [inputIds.length, inputIds[0].length], { dtype: 'i32', backend: 'cpu' });
    const logits = noGrad(() => model.forward({ inputIds: ids }).logits);
    writeFileSync(join(dir, 'case.json'), JSON.stringify({ name: c.name, base: c.base, inputIds, logitsShape: logits.shape, logits: Array.from(await logits.data()) }));
    for (const t of [ids, logits, model]) t.dispose();
    console.log(`${c.name}: merged checkpoint and logits written to ${dir}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
