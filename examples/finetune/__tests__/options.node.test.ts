import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OptionError, helpText, parseOptions } from '../src/options.js';

/** One bad value per option, and the accepted values its message must name. */
const BAD: [flag: string, value: string, accepted: RegExp][] = [
  ['--method', 'lorax', /--method must be one of full, lora, qlora, dora, ia3, adapter-houlsby, adapter-pfeiffer, adapter-parallel, prompt, prefix, p-tuning; got 'lorax'/],
  ['--rank', '0', /--rank must be an integer >= 1; got '0'/],
  ['--num-virtual-tokens', '0', /--num-virtual-tokens must be an integer >= 1; got '0'/],
  ['--encoder', 'gru', /--encoder must be one of mlp, lstm; got 'gru'/],
  ['--alpha', 'big', /--alpha must be a non-negative number; got 'big'/],
  ['--dropout', '1.5', /--dropout must be a number in \[0, 1\]; got '1.5'/],
  ['--targets', 'q_proj,,v_proj', /--targets must be comma-separated module names like q_proj,v_proj, or 'all-linear'; got 'q_proj,,v_proj'/],
  ['--lr', '-1', /--lr must be a non-negative number; got '-1'/],
  ['--schedule', 'step', /--schedule must be one of cosine, linear, constant; got 'step'/],
  ['--warmup', '2.5', /--warmup must be an integer >= 0; got '2.5'/],
  ['--steps', '', /--steps must be an integer >= 1; got ''/],
  ['--epochs', '0', /--epochs must be a positive number; got '0'/],
  ['--save-every', '-2', /--save-every must be an integer >= 0; got '-2'/],
  ['--batch', 'x', /--batch must be an integer >= 1; got 'x'/],
  ['--grad-accum', '0', /--grad-accum must be an integer >= 1; got '0'/],
  ['--seq-len', '-4', /--seq-len must be an integer >= 1; got '-4'/],
  ['--eval-every', 'often', /--eval-every must be an integer >= 0; got 'often'/],
  ['--eval-batches', '0', /--eval-batches must be an integer >= 1; got '0'/],
  ['--backend', 'cuda', /--backend must be one of webgpu, cpu; got 'cuda'/],
  ['--dtype', 'bf16', /--dtype must be one of f32, f16, auto; got 'bf16'/],
  ['--non-finite', 'ignore', /--non-finite must be one of warn, skip, throw; got 'ignore'/],
  ['--seed', '1e400', /--seed must be an integer >= 0; got '1e400'/],
  ['--max-new-tokens', '0', /--max-new-tokens must be an integer >= 1; got '0'/],
  ['--temperature', 'hot', /--temperature must be a non-negative number; got 'hot'/],
  ['--top-p', '2', /--top-p must be a number in \[0, 1\]; got '2'/],
  ['--corpus-chars', '10.5', /--corpus-chars must be an integer >= 1; got '10.5'/],
  ['--packing', 'yes', /Option '--packing' does not take an argument/],
  ['--overwrite', 'yes', /Option '--overwrite' does not take an argument/],
  ['--debug', '1', /Option '--debug' does not take an argument/],
  ['--gradient-checkpointing', 'on', /Option '--gradient-checkpointing' does not take an argument/],
  ['--fused-ce', 'on', /Option '--fused-ce' does not take an argument/],
  ['--attn', 'flash', /--attn must be one of eager, fused; got 'flash'/],
  ['--packing-strategy', 'ffd', /--packing-strategy must be one of bfd, bfd_split, wrapped; got 'ffd'/],
  ['--init-lora-weights', 'corda', /--init-lora-weights must be default, gaussian, pissa, pissa_niter_K \(K >= 1\), olora or loftq; got 'corda'/],
  ['--merge-adapters', 'no-such-adapter', /--merge-adapters: 'no-such-adapter' has no adapter_config\.json/],
  ['--merge-weights', '0.5', /--merge-weights applies to --merge-adapters, which is not given/],
  ['--combination-type', 'ties', /--combination-type applies to --merge-adapters, which is not given/],
  ['--density', '0.5', /--density applies to --merge-adapters, which is not given/],
  ['--majority-sign', 'total', /--majority-sign applies to --merge-adapters, which is not given/],
  ['--svd-rank', '4', /--svd-rank applies to --merge-adapters, which is not given/],
  ['--svd-clamp', '0.9', /--svd-clamp applies to --merge-adapters, which is not given/],
  ['--loftq-bits', '8', /--loftq-bits must be 4 \(LoftQ's NF4 quantizer; 8-bit LoftQ is not supported\); got 8/],
  ['--loftq-iter', '0', /--loftq-iter must be an integer >= 1; got '0'/],
  ['--completion-only', 'yes', /--completion-only must be one of auto, true, false; got 'yes'/],
  // Tests run at the repository root, where package.json is a file.
  ['--merge-and-export', 'package.json', /--merge-and-export: 'package\.json' exists and is not an empty directory; choose a new folder/],
];

describe('fine-tuning CLI options', () => {
  it('has a default for every option', () => {
    const o = parseOptions([])!;
    expect(o).toMatchObject({ model: null, method: 'qlora', targets: ['all-linear', 'lm_head'], schedule: 'cosine', backend: 'webgpu', out: 'out/finetune-qlora', lr: 1e-2 });
    expect(parseOptions(['--method', 'full'])!.lr).toBe(1e-3);
    expect(parseOptions(['--method', 'adapter-parallel'])).toMatchObject({ method: 'adapter-parallel', lr: 1e-2, out: 'out/finetune-adapter-parallel' });
  });

  it.each(BAD)('rejects %s %j with a one-line message naming the accepted values', (flag, value, accepted) => {
    let error: unknown;
    try {
      // `--flag=value`: parseArgs takes a separate "-1" for another flag.
      parseOptions([`${flag}=${value}`]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OptionError);
    expect((error as Error).message).toMatch(accepted);
    expect((error as Error).message).not.toContain('\n');
  });

  it('covers every option listed in --help with a rejection case', () => {
    const listed = [...helpText().matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]).filter((f) => !['--model', '--out', '--prompt', '--data', '--chat-template', '--resume', '--config', '--help'].includes(f));
    // --model, --out, --prompt, --data, --chat-template and --resume accept any text (files are read by
    // the run; --resume is checked before loading: resume-cli.node.test.ts); --config is tested below.
    expect(listed.sort()).toEqual(BAD.map(([f]) => f).sort());
    for (const line of helpText().split('\n').filter((l) => l.startsWith('  --') && !l.includes('--config') && !l.includes('--help'))) {
      expect(line, 'every option shows its default').toMatch(/\(default: .+\)$/);
    }
  });

  it('--init-lora-weights: LoRA and QLoRA only; the LoftQ flags only with loftq', () => {
    expect(parseOptions(['--method', 'lora', '--init-lora-weights', 'pissa_niter_4'])).toMatchObject({ initLoraWeights: 'pissa_niter_4', loftqBits: 4, loftqIter: 1 });
    expect(parseOptions(['--init-lora-weights', 'loftq', '--loftq-iter', '3'])).toMatchObject({ method: 'qlora', initLoraWeights: 'loftq', loftqIter: 3 });
    expect(() => parseOptions(['--method', 'dora', '--init-lora-weights', 'pissa'])).toThrow(/--init-lora-weights applies to --method lora or qlora; got --method dora/);
    expect(() => parseOptions(['--init-lora-weights', 'pissa', '--loftq-iter', '2'])).toThrow(/--loftq-bits and --loftq-iter apply to --init-lora-weights loftq; got 'pissa'/);
    expect(() => parseOptions(['--init-lora-weights', 'pissa_niter_0'])).toThrow(/--init-lora-weights must be/);
  });

  it("--merge-adapters: PEFT's add_weighted_adapter options, checked together before anything loads", () => {
    const root = mkdtempSync(join(tmpdir(), 'merge-opts-'));
    const [a, b] = [join(root, 'a'), join(root, 'b')];
    for (const d of [a, b]) {
      mkdirSync(d);
      writeFileSync(join(d, 'adapter_config.json'), '{}');
    }
    const both = ['--method', 'lora', '--merge-adapters', `${a},${b}`];
    expect(parseOptions(both)!.merge).toEqual({ adapters: [a, b], weights: [1, 1], options: { combinationType: 'svd' } });
    expect(parseOptions([...both, '--merge-weights', '0.7,-0.3', '--combination-type', 'dare_ties_svd', '--density', '0.4', '--majority-sign', 'frequency', '--svd-rank', '3', '--svd-clamp', '0.95'])!.merge).toEqual({
      adapters: [a, b],
      weights: [0.7, -0.3],
      options: { combinationType: 'dare_ties_svd', density: 0.4, majoritySignMethod: 'frequency', svdRank: 3, svdClamp: 0.95 },
    });
    // PEFT's single-adapter rule: one adapter is combined linearly.
    expect(parseOptions(['--merge-adapters', a, '--combination-type', 'cat'])!.merge!.options).toEqual({ combinationType: 'linear' });
    expect(parseOptions([])!.merge).toBeNull();
    const refused: [string[], RegExp][] = [
      [['--method', 'dora', '--merge-adapters', a], /--merge-adapters combines LoRA adapters: use --method lora .* or qlora .*; got --method dora/],
      [[...both, '--merge-weights', '1'], /--merge-weights needs one weight per adapter of --merge-adapters \(2\); got 1/],
      [[...both, '--merge-weights', '1,x'], /--merge-weights must be comma-separated finite numbers/],
      [[...both, '--combination-type', 'average'], /--combination-type must be one of linear, cat, svd, ties, .*; got 'average'/],
      [[...both, '--combination-type', 'ties'], /--combination-type ties needs --density/],
      [[...both, '--density', '0.5'], /--density applies to --combination-type ties, .*; got svd/],
      [[...both, '--combination-type', 'ties', '--density', '1.5'], /--density must be a number in \[0, 1\]; got '1.5'/],
      [[...both, '--majority-sign', 'total'], /--majority-sign applies to --combination-type ties, ties_svd, dare_ties, dare_ties_svd; got svd/],
      [[...both, '--combination-type', 'ties', '--density', '0.5', '--majority-sign', 'most'], /--majority-sign must be one of total, frequency; got 'most'/],
      [[...both, '--combination-type', 'linear', '--svd-rank', '2'], /--svd-rank applies to --combination-type svd, .*; got linear/],
      [[...both, '--svd-rank', '0'], /--svd-rank must be an integer >= 1; got '0'/],
      [[...both, '--svd-clamp', '2'], /--svd-clamp must be a quantile in \[0, 1\]; got '2'/],
      [[...both, '--resume', root], /--resume continues a training run; --merge-adapters trains nothing/],
      [[...both, '--init-lora-weights', 'pissa'], /--init-lora-weights initialises an adapter to train; --merge-adapters loads trained ones/],
      [['--method', 'lora', '--merge-adapters', `${a},,${b}`], /--merge-adapters must be comma-separated adapter folders/],
    ];
    for (const [argv, message] of refused) expect(() => parseOptions(argv), argv.join(' ')).toThrow(message);
  });

  it('--dtype: f32 by default, f16 and auto for adapter methods, f16 refused for full fine-tuning', () => {
    expect(parseOptions([])!.dtype).toBe('f32');
    expect(parseOptions(['--dtype', 'f16'])!.dtype).toBe('f16');
    expect(parseOptions(['--dtype', 'auto', '--method', 'full'])!.dtype).toBe('auto');
    expect(() => parseOptions(['--dtype', 'f16', '--method', 'full'])).toThrow(/--dtype f16 needs an adapter method/);
  });

  it('takes --epochs instead of --steps, never both; switches take no value on the command line and booleans in --config', () => {
    expect(parseOptions(['--epochs', '0.5'])).toMatchObject({ epochs: 0.5, steps: 36 });
    expect(parseOptions([])).toMatchObject({ epochs: null, saveEvery: 0, resume: null, overwrite: false, debug: false });
    expect(() => parseOptions(['--epochs', '2', '--steps', '10'])).toThrow(/^--epochs and --steps are exclusive: give one \(got --epochs 2 and --steps 10\)$/);
    expect(parseOptions(['--overwrite', '--debug', '--save-every', '5', '--resume', 'out/x'])).toMatchObject({ overwrite: true, debug: true, saveEvery: 5, resume: 'out/x' });
    expect(() => parseOptions(['--overwrite=yes'])).toThrow(OptionError);
    const dir = mkdtempSync(join(tmpdir(), 'finetune-options-'));
    const config = join(dir, 'switches.json');
    writeFileSync(config, JSON.stringify({ overwrite: true, epochs: 3 }));
    expect(parseOptions(['--config', config])).toMatchObject({ overwrite: true, epochs: 3 });
    writeFileSync(config, JSON.stringify({ overwrite: 'yes' }));
    expect(() => parseOptions(['--config', config])).toThrow(/--overwrite is a flag \(true or false in --config\); got 'yes'/);
    writeFileSync(config, JSON.stringify({ steps: 4, epochs: 1 }));
    expect(() => parseOptions(['--config', config])).toThrow(/--epochs and --steps are exclusive/);
  });

  it('rejects unknown flags and warmup beyond the steps', () => {
    expect(() => parseOptions(['--rnak', '4'])).toThrow(/Unknown option '--rnak'/);
    expect(() => parseOptions(['--steps', '3', '--warmup', '4'])).toThrow(/--warmup must be at most --steps \(3\), got 4/);
  });

  it('reads --config (camelCase or kebab-case keys); flags override it; bad files are named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-options-'));
    const good = join(dir, 'train.json');
    writeFileSync(good, JSON.stringify({ method: 'lora', 'seq-len': 32, gradAccum: 2, targets: ['q_proj', 'v_proj'] }));
    expect(parseOptions(['--config', good, '--seq-len', '16'])).toMatchObject({ method: 'lora', seqLen: 16, gradAccum: 2, targets: ['q_proj', 'v_proj'] });
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ epoch: 3 }));
    expect(() => parseOptions(['--config', unknown])).toThrow(new RegExp(`--config ${unknown.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: unknown option 'epoch'`));
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "method": ');
    expect(() => parseOptions(['--config', broken])).toThrow(/--config .*broken\.json: /);
    const badValue = join(dir, 'bad-value.json');
    writeFileSync(badValue, JSON.stringify({ method: 'sgd' }));
    expect(() => parseOptions(['--config', badValue])).toThrow(/--method must be one of full, lora, qlora, dora, ia3, adapter-houlsby, adapter-pfeiffer, adapter-parallel, prompt, prefix, p-tuning; got 'sgd'/);
  });

  it('--data and its SFT options: TRL names in --help, SFT options need --data, --packing is a flag', () => {
    const help = helpText();
    for (const name of ['packing', 'packing_strategy', 'completion_only_loss', 'assistant_only_loss', 'chat_template_path']) expect(help).toContain(name);
    expect(parseOptions([])).toMatchObject({ data: null, packing: false, packingStrategy: 'bfd', completionOnly: 'auto', chatTemplate: null });
    expect(parseOptions(['--data', 'x.jsonl', '--packing', '--completion-only', 'true'])).toMatchObject({ data: 'x.jsonl', packing: true, completionOnly: 'true' });
    expect(() => parseOptions(['--packing'])).toThrow(/^--packing applies to --data, which is not given$/);
    expect(() => parseOptions(['--completion-only', 'false'])).toThrow(/^--completion-only applies to --data/);
    const dir = mkdtempSync(join(tmpdir(), 'finetune-options-'));
    const config = join(dir, 'sft.json');
    writeFileSync(config, JSON.stringify({ data: 'qa.jsonl', packing: true, 'packing-strategy': 'wrapped' }));
    expect(parseOptions(['--config', config])).toMatchObject({ data: 'qa.jsonl', packing: true, packingStrategy: 'wrapped' });
  });
});
