/**
 * The merge job of `--merge-adapters`: PEFT's `add_weighted_adapter` from the CLI. The
 * saved LoRA adapters are loaded onto the model, each is evaluated on the held-out
 * batches, they are combined into one adapter (`default`), which is evaluated, sampled
 * and saved to `--out` in PEFT's format (and merged into the base with
 * `--merge-and-export`).
 */
import type { CausalLM, Tokenizer } from '@webpeft/nn';
import { type LoraConfig, type PeftModel, loadPeftModel } from '@webpeft/peft';
import type { TokenBatch } from './batches.js';
import type { MergePlan } from './merge-options.js';
import type { FinetuneOptions } from './options.js';
import { type SampleOptions, evaluate, sample } from './train.js';

/** What the merge job reads from the run. */
export interface MergeContext {
  opts: FinetuneOptions;
  evalSet: TokenBatch[];
  tokenizer: Tokenizer;
  sampling: SampleOptions;
  evalBefore: number;
  log: (line: string) => void;
}

/**
 * Loads `plan.adapters` onto `model` as `adapter1..N`, reports each one's eval loss, combines
 * them into `default` (the inputs are then deleted) and returns the model holding it; the
 * caller saves, exports and disposes it (on an error: disposes `model`, which then holds
 * whatever adapters were loaded).
 */
export async function mergeAdapters(model: CausalLM, plan: MergePlan, ctx: MergeContext): Promise<PeftModel> {
  const { log, opts } = ctx;
  const names = plan.adapters.map((_, i) => `adapter${i + 1}`);
  const peft = await loadPeftModel(model, plan.adapters[0], { adapterName: names[0] });
  for (let i = 1; i < names.length; i++) await peft.loadAdapter(plan.adapters[i], names[i]);
  const lm = peft.model as CausalLM;
  for (const [i, name] of names.entries()) {
    peft.setAdapter(name);
    log(`  ${plan.adapters[i]} (weight ${plan.weights[i]}): eval loss ${(await evaluate(lm, ctx.evalSet, opts.backend)).toFixed(4)}`);
  }
  const o = plan.options;
  await peft.addWeightedAdapter(names, plan.weights, 'default', o);
  for (const name of names) peft.deleteAdapter(name);
  peft.setAdapter('default');
  const details = [o.density !== undefined ? `density ${o.density}` : '', o.majoritySignMethod ? `majority sign ${o.majoritySignMethod}` : '', o.svdRank ? `rank ${o.svdRank}` : '', o.svdClamp != null ? `clamp ${o.svdClamp}` : ''].filter(Boolean);
  log(`Merged ${names.length} adapters with ${o.combinationType}${details.length ? ` (${details.join(', ')})` : ''}: rank ${(peft.peftConfig.get('default') as LoraConfig).r}`);
  const after = await evaluate(lm, ctx.evalSet, opts.backend);
  log(`Sample with the merged adapter: ${JSON.stringify(opts.prompt + (await sample(lm, ctx.tokenizer, opts.prompt, ctx.sampling)))}`);
  log(`Eval loss: base ${ctx.evalBefore.toFixed(4)}, merged adapter ${after.toFixed(4)}`);
  return peft;
}
