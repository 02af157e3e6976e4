import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PROMPT_ENCODERS, isPromptMethod } from './prompt-methods.js';
import { type MergePlan, MAJORITY_SIGN, parseMergeOptions } from './merge-options.js';

/** Fine-tuning methods the CLI runs. */
export const METHODS = ['full', 'lora', 'qlora', 'dora', 'ia3', 'adapter-houlsby', 'adapter-pfeiffer', 'adapter-parallel', 'prompt', 'prefix', 'p-tuning'] as const;
/**
 * Fine-tuning method: all weights, LoRA, LoRA on an NF4 base, DoRA, IA3, a bottleneck
 * adapter (Houlsby, Pfeiffer or parallel placement), or a prompt-learning method
 * (prompt tuning, prefix tuning, P-tuning).
 */
export type Method = (typeof METHODS)[number];
/** Learning-rate schedules after warmup. */
export const SCHEDULES = ['cosine', 'linear', 'constant'] as const;
/** Learning-rate schedule after warmup. */
export type Schedule = (typeof SCHEDULES)[number];
/** Compute backends. */
export const BACKENDS = ['webgpu', 'cpu'] as const;
/** Weight and compute dtypes: f32, f16 (needs an adapter with shader-f16), or auto (f16 where available). */
export const DTYPES = ['f32', 'f16', 'auto'] as const;
/** Attention implementations (`--attn`, transformers' `attn_implementation`). */
export const ATTN_IMPLEMENTATIONS = ['eager', 'fused'] as const;
/** What a step with a NaN or infinite gradient does (the optimizer's `nonFinite` policy). */
export const NON_FINITE = ['warn', 'skip', 'throw'] as const;
/** TRL's `packing_strategy` values (`--packing-strategy`). */
export const PACKING_STRATEGIES = ['bfd', 'bfd_split', 'wrapped'] as const;
/** `--completion-only`: TRL's default, on (completion_only_loss / assistant_only_loss), off. */
export const COMPLETION_ONLY = ['auto', 'true', 'false'] as const;

/** Options of the fine-tuning CLI (every one has a default). */
export interface FinetuneOptions {
  /** Checkpoint folder or URL; null means the embedded default model. */
  model: string | null;
  method: Method;
  rank: number;
  alpha: number;
  /** Virtual tokens of a prompt-learning method (`prompt`, `prefix`, `p-tuning`). */
  numVirtualTokens: number;
  /** P-tuning's encoder of the virtual tokens. */
  encoder: (typeof PROMPT_ENCODERS)[number];
  dropout: number;
  /** LoRA init (PEFT's `init_lora_weights`): `default` (A kaiming, B zero), `gaussian`, `pissa`, `pissa_niter_K`, `olora`, `loftq`. */
  initLoraWeights: string;
  /** LoftQ's quantizer bits (4: NF4). */
  loftqBits: number;
  /** LoftQ's alternating quantize / SVD steps. */
  loftqIter: number;
  /** Module names; `all-linear` among them stands for every linear layer but the output head (PEFT's shorthand). */
  targets: string[];
  lr: number;
  schedule: Schedule;
  warmup: number;
  /** Optimizer steps; with {@link epochs} set, the run computes them from the corpus size instead. */
  steps: number;
  /** Passes over the training tokens (an alternative to `steps`, exclusive with it); null: use `steps`. */
  epochs: number | null;
  batch: number;
  gradAccum: number;
  seqLen: number;
  evalEvery: number;
  evalBatches: number;
  out: string;
  /** After training, merge the adapter into the base and write an HF checkpoint folder here; null: no export. */
  mergeAndExport: string | null;
  /** Save a trainer checkpoint to `<out>/checkpoint-<step>` every N steps (0: never). */
  saveEvery: number;
  /** A trainer checkpoint folder to continue from (or a folder holding `checkpoint-<step>` folders: the latest); null: start afresh. */
  resume: string | null;
  /** Replace output files and checkpoints this run did not create. */
  overwrite: boolean;
  /** Print the stack trace of an error (else one line). */
  debug: boolean;
  /** Recompute each decoder layer in backward instead of keeping its activations (transformers' `gradient_checkpointing`). */
  gradientCheckpointing: boolean;
  /** Compute the loss with the fused linear + cross-entropy (no `[B, T, V]` logits; needs lm_head without an adapter). */
  fusedCe: boolean;
  /** Eager attention (scores `[B, H, T, L]`) or the memory-efficient fused kernels. */
  attn: (typeof ATTN_IMPLEMENTATIONS)[number];
  backend: (typeof BACKENDS)[number];
  /** Dtype of the frozen base and its compute; adapters and optimizer state stay f32. */
  dtype: (typeof DTYPES)[number];
  /** Non-finite gradients: skip the step and warn after 10 in a row, skip silently, or stop the run. */
  nonFinite: (typeof NON_FINITE)[number];
  seed: number;
  prompt: string;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  corpusChars: number;
  /** SFT data file (plain text or JSONL); null: the State of the Union corpus. */
  data: string | null;
  /** Pack short `--data` samples into `--seq-len` rows (TRL `packing`). */
  packing: boolean;
  packingStrategy: (typeof PACKING_STRATEGIES)[number];
  completionOnly: (typeof COMPLETION_ONLY)[number];
  /** Jinja chat template file for `{"messages"}` data; null: the tokenizer's. */
  chatTemplate: string | null;
  /** `--merge-adapters` and its options as given (empty: not given); parsed into {@link merge}. */
  mergeAdapters: string;
  mergeWeights: string;
  combinationType: string;
  density: string;
  majoritySign: string;
  svdRank: string;
  svdClamp: string;
  /** The merge job (`--merge-adapters`): adapters, weights and `addWeightedAdapter` options; null: train. */
  merge: MergePlan | null;
}

type Kind = 'int' | 'posint' | 'number' | 'posnumber' | 'prob' | 'string' | 'list' | 'flag';

interface Spec {
  key: keyof FinetuneOptions;
  kind: Kind;
  default: string;
  help: string;
  choices?: readonly string[];
  /** Shown instead of the default value in --help. */
  defaultText?: string;
  /** An empty value (the default) means "not set": null. */
  nullable?: boolean;
}

/** Every option, in --help order. Flag names are the kebab-case keys. */
const SPECS: Spec[] = [
  { key: 'model', kind: 'string', default: '', defaultText: 'the embedded default model', help: 'Hugging Face checkpoint folder, http(s) URL or Hub repo id (GPT-2 or LLaMA family)' },
  { key: 'method', kind: 'string', default: 'qlora', choices: METHODS, help: 'what to train: all weights, LoRA, LoRA on an NF4 base, DoRA, IA3, bottleneck adapters (Houlsby, Pfeiffer, parallel), prompt tuning, prefix tuning, P-tuning' },
  { key: 'rank', kind: 'posint', default: '16', help: 'LoRA/DoRA rank' },
  { key: 'alpha', kind: 'number', default: '32', help: 'LoRA/DoRA alpha (scale alpha / rank)' },
  { key: 'dropout', kind: 'prob', default: '0', help: 'LoRA/DoRA dropout probability' },
  { key: 'initLoraWeights', kind: 'string', default: 'default', help: 'LoRA/QLoRA init: default (A kaiming, B zero), gaussian, pissa, pissa_niter_K (randomized SVD, K power iterations), olora (QR) or loftq (rewrite the base: PiSSA and OLoRA keep the residual, LoftQ the NF4 base)' },
  { key: 'loftqBits', kind: 'posint', default: '4', help: 'bits of the LoftQ quantizer (4: NF4, the one supported) for --init-lora-weights loftq' },
  { key: 'loftqIter', kind: 'posint', default: '1', help: 'alternating quantize / SVD steps of --init-lora-weights loftq' },
  { key: 'numVirtualTokens', kind: 'posint', default: '20', help: 'virtual tokens of --method prompt, prefix or p-tuning' },
  { key: 'encoder', kind: 'string', default: 'mlp', choices: PROMPT_ENCODERS, help: 'encoder of the virtual tokens of --method p-tuning' },
  { key: 'targets', kind: 'list', default: 'all-linear,lm_head', help: "comma-separated module names; 'all-linear': every linear layer but lm_head" },
  { key: 'lr', kind: 'number', default: '', defaultText: '1e-2 for adapters, 1e-3 for full', help: 'peak learning rate' },
  { key: 'schedule', kind: 'string', default: 'cosine', choices: SCHEDULES, help: 'learning-rate decay after warmup' },
  { key: 'warmup', kind: 'int', default: '4', help: 'linear warmup steps' },
  { key: 'steps', kind: 'posint', default: '36', help: 'optimizer steps' },
  { key: 'epochs', kind: 'posnumber', default: '', nullable: true, defaultText: 'none: use --steps', help: 'passes over the training data instead of --steps (exclusive with it)' },
  { key: 'batch', kind: 'posint', default: '8', help: 'sequences per micro-batch' },
  { key: 'gradAccum', kind: 'posint', default: '1', help: 'micro-batches per optimizer step' },
  { key: 'seqLen', kind: 'posint', default: '64', help: 'tokens per sequence' },
  { key: 'evalEvery', kind: 'int', default: '0', help: 'evaluate every N steps (0: only before and after)' },
  { key: 'evalBatches', kind: 'posint', default: '4', help: 'held-out batches per evaluation' },
  { key: 'out', kind: 'string', default: '', defaultText: 'out/finetune-<method>', help: 'where the adapter (PEFT format) or the model goes' },
  { key: 'mergeAndExport', kind: 'string', default: '', defaultText: 'none', help: 'after training, merge the adapter into the base and write a Hugging Face checkpoint folder (transformers loads it) to this new directory' },
  { key: 'saveEvery', kind: 'int', default: '0', help: 'save a trainer checkpoint to <out>/checkpoint-<step> every N steps (0: never)' },
  { key: 'resume', kind: 'string', default: '', nullable: true, defaultText: 'none', help: 'continue from a checkpoint folder (or the latest checkpoint-<step> in a folder)' },
  { key: 'overwrite', kind: 'flag', default: 'false', help: 'replace output files and checkpoints this run did not create' },
  { key: 'debug', kind: 'flag', default: 'false', help: 'print the stack trace of an error' },
  { key: 'gradientCheckpointing', kind: 'flag', default: 'false', help: 'recompute each decoder layer in backward: fewer activation bytes, same gradients, one more forward per step' },
  { key: 'fusedCe', kind: 'flag', default: 'false', help: 'fused linear + cross-entropy: the loss over vocabulary chunks, no [batch, seq, vocab] logits (needs lm_head out of --targets)' },
  { key: 'attn', kind: 'string', default: 'eager', choices: ATTN_IMPLEMENTATIONS, help: "attention: eager (scores [B, H, T, L]) or fused (memory-efficient kernels; refuses attention dropout in training)" },
  { key: 'backend', kind: 'string', default: 'webgpu', choices: BACKENDS, help: 'compute backend' },
  { key: 'dtype', kind: 'string', default: 'f32', choices: DTYPES, help: 'base weights and compute: f32, f16 (adapter needs shader-f16), auto (f16 where the adapter has it); adapters stay f32' },
  { key: 'nonFinite', kind: 'string', default: 'warn', choices: NON_FINITE, help: 'a step whose gradients hold NaN/inf is skipped; warn after 10 in a row, skip silently, or throw' },
  { key: 'seed', kind: 'int', default: '0', help: 'seed of adapter init, batches and sampling' },
  { key: 'prompt', kind: 'string', default: 'Mr. Speaker, Mr. Vice President, members of Congress,', help: 'prompt of the before/after samples' },
  { key: 'maxNewTokens', kind: 'posint', default: '40', help: 'sample length in tokens' },
  { key: 'temperature', kind: 'number', default: '0.8', help: 'sampling temperature (0: greedy)' },
  { key: 'topP', kind: 'prob', default: '0.9', help: 'nucleus sampling mass' },
  { key: 'corpusChars', kind: 'posint', default: '400000', help: 'characters of State of the Union text to use' },
  { key: 'data', kind: 'string', default: '', defaultText: 'the State of the Union corpus', help: 'SFT data: plain text (a sample per line) or JSONL {"text"} | {"prompt","completion"} | {"messages"}; last 10% held out' },
  { key: 'packing', kind: 'flag', default: 'false', help: "pack short --data samples into --seq-len rows (TRL packing)" },
  { key: 'packingStrategy', kind: 'string', default: 'bfd', choices: PACKING_STRATEGIES, help: 'TRL packing_strategy: best-fit decreasing (samples stay whole), bfd with overflow split, or wrapped' },
  { key: 'completionOnly', kind: 'string', default: 'auto', choices: COMPLETION_ONLY, help: "loss on completions only: TRL completion_only_loss ({\"prompt\",\"completion\"}) / assistant_only_loss ({\"messages\"}, needs {% generation %} in the template); auto: TRL's default" },
  { key: 'chatTemplate', kind: 'string', default: '', defaultText: "the tokenizer's", help: 'Jinja chat template file for {"messages"} data (TRL chat_template_path)' },
  { key: 'mergeAdapters', kind: 'string', default: '', defaultText: 'none: train', help: "comma-separated LoRA adapter folders (PEFT format) for --model: combine them into one adapter saved to --out instead of training (PEFT's add_weighted_adapter)" },
  { key: 'mergeWeights', kind: 'string', default: '', defaultText: '1 each', help: 'comma-separated weights of --merge-adapters (any sign)' },
  { key: 'combinationType', kind: 'string', default: '', defaultText: 'svd', help: 'how --merge-adapters combine: linear, cat, svd, ties, ties_svd, dare_linear, dare_ties, dare_linear_svd, dare_ties_svd, magnitude_prune, magnitude_prune_svd' },
  { key: 'density', kind: 'string', default: '', defaultText: 'none', help: 'fraction of values kept by the ties, dare and magnitude_prune combinations, in [0, 1]' },
  { key: 'majoritySign', kind: 'string', default: '', defaultText: 'total', help: `TIES sign election of the ties combinations: ${MAJORITY_SIGN.join(' or ')}` },
  { key: 'svdRank', kind: 'string', default: '', defaultText: 'the largest adapter rank', help: 'rank of the merged adapter of the svd combinations' },
  { key: 'svdClamp', kind: 'string', default: '', defaultText: 'none', help: 'svd combinations: clamp the factors to this quantile of their entries, in [0, 1]' },
];

const flagOf = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The --help text, listing every option with its default. */
export function helpText(): string {
  const rows = SPECS.map((s) => {
    const value = s.kind === 'flag' ? '' : s.choices ? s.choices.join('|') : s.kind === 'string' || s.kind === 'list' ? 'TEXT' : s.kind === 'number' || s.kind === 'posnumber' || s.kind === 'prob' ? 'X' : 'N';
    const def = s.defaultText ?? (s.default === '' ? 'none' : s.default);
    return `  --${flagOf(s.key)}${value ? ` ${value}` : ''}`.padEnd(36) + `${s.help} (default: ${def})`;
  });
  return [
    'Fine-tune a causal LM on State of the Union addresses (1990-2010, last 10% held out), or on --data FILE.',
    '',
    'The default model is @webpeft/default-model, a small LLaMA pretrained on Moby-Dick.',
    '',
    'Usage: npm run finetune -- [options]',
    ...rows,
    '  --config FILE'.padEnd(36) + 'JSON object of options (camelCase or kebab-case keys); flags override it',
    '  --help'.padEnd(36) + 'print this and exit',
  ].join('\n');
}

/** A bad option value: the message names the option and what it accepts. */
export class OptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptionError';
  }
}

/**
 * Parses and validates `argv` (without node and script) and an optional `--config` file.
 * Throws {@link OptionError} naming the option and its accepted values; never loads a model.
 * Returns null for `--help` (after printing it with `print`).
 */
export function parseOptions(argv: string[], print: (text: string) => void = (t) => console.log(t)): FinetuneOptions | null {
  const flagSpecs = Object.fromEntries(SPECS.map((s) => [flagOf(s.key), { type: s.kind === 'flag' ? ('boolean' as const) : ('string' as const) }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...flagSpecs, config: { type: 'string' }, help: { type: 'boolean' } }, allowPositionals: false, strict: true });
  } catch (e) {
    throw new OptionError(`${(e as Error).message.split('\n')[0]} (see --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) {
    print(helpText());
    return null;
  }
  const fromConfig = values.config === undefined ? {} : readConfig(String(values.config));
  const raw = new Map<string, string>();
  for (const [k, v] of Object.entries(fromConfig)) raw.set(k, v);
  for (const s of SPECS) {
    const v = values[flagOf(s.key)];
    if (typeof v === 'string') raw.set(s.key, v);
    else if (v === true) raw.set(s.key, 'true');
  }
  const out: Record<string, unknown> = {};
  for (const s of SPECS) out[s.key] = convert(s, raw.get(s.key) ?? s.default);
  const o = out as unknown as FinetuneOptions;
  if (o.lr === null) o.lr = o.method === 'full' ? 1e-3 : 1e-2;
  if (o.out === '') o.out = `out/finetune-${o.method}`;
  if (o.model === '') o.model = null;
  if (o.epochs !== null && raw.has('steps')) throw new OptionError(`--epochs and --steps are exclusive: give one (got --epochs ${o.epochs} and --steps ${o.steps})`);
  if (o.data === '') o.data = null;
  if (o.chatTemplate === '') o.chatTemplate = null;
  if (o.data === null) {
    const sft = SPECS.filter((s) => ['packing', 'packingStrategy', 'completionOnly', 'chatTemplate'].includes(s.key) && raw.has(s.key) && raw.get(s.key) !== s.default);
    if (sft.length > 0) throw new OptionError(`--${flagOf(sft[0].key)} applies to --data, which is not given`);
  }
  checkPromptOptions(o, raw);
  checkInitOptions(o, raw);
  o.merge = parseMergeOptions(o, o.method, (message) => {
    throw new OptionError(message);
  });
  if (o.merge && o.resume !== null) throw new OptionError('--resume continues a training run; --merge-adapters trains nothing');
  if (o.merge && o.initLoraWeights !== 'default') throw new OptionError('--init-lora-weights initialises an adapter to train; --merge-adapters loads trained ones');
  for (const dir of o.merge?.adapters ?? []) {
    if (!existsSync(join(dir, 'adapter_config.json'))) throw new OptionError(`--merge-adapters: '${dir}' has no adapter_config.json (give folders saved by this CLI or PEFT's save_pretrained)`);
  }
  o.mergeAndExport = o.mergeAndExport === '' ? null : o.mergeAndExport;
  if (o.mergeAndExport !== null) checkMergeAndExport(o.method, o.mergeAndExport);
  // Full fine-tuning trains the weights themselves, which need f32 master copies.
  if (o.method === 'full' && o.dtype === 'f16') throw new OptionError("--dtype f16 needs an adapter method: --method full trains the weights, which stay f32 (use --dtype f32 or auto)");
  // With --epochs the steps are known once the corpus is tokenized; the run checks warmup then.
  if (o.epochs === null && o.warmup > o.steps) throw new OptionError(`--warmup must be at most --steps (${o.steps}), got ${o.warmup}`);
  return o;
}

/**
 * Prompt-learning options: `--num-virtual-tokens` and `--encoder` only with the methods
 * they belong to, and no `--packing` (a packed row's per-sample attention mask has no
 * place for the virtual tokens in front of it).
 */
function checkPromptOptions(o: FinetuneOptions, raw: Map<string, string>): void {
  const given = (key: keyof FinetuneOptions) => raw.has(key) && raw.get(key) !== SPECS.find((s) => s.key === key)?.default;
  const prompt = isPromptMethod(o.method);
  if (!prompt && given('numVirtualTokens')) throw new OptionError(`--num-virtual-tokens applies to --method prompt, prefix or p-tuning; got --method ${o.method}`);
  if (o.method !== 'p-tuning' && given('encoder')) throw new OptionError(`--encoder applies to --method p-tuning; got --method ${o.method}`);
  if (prompt && o.packing) {
    throw new OptionError(`--packing: --method ${o.method} puts virtual tokens in front of every row, which a packed row's per-sample mask cannot cover; drop --packing (rows are then padded)`);
  }
}

/** `--init-lora-weights` and the LoftQ options: LoRA and QLoRA only, known names, LoftQ's flags only with loftq. */
function checkInitOptions(o: FinetuneOptions, raw: Map<string, string>): void {
  const given = (key: keyof FinetuneOptions) => raw.has(key) && raw.get(key) !== SPECS.find((s) => s.key === key)?.default;
  const init = o.initLoraWeights;
  if (!/^(default|gaussian|pissa|pissa_niter_[1-9]\d*|olora|loftq)$/.test(init)) throw new OptionError(`--init-lora-weights must be default, gaussian, pissa, pissa_niter_K (K >= 1), olora or loftq; got '${init}'`);
  if (init !== 'default' && o.method !== 'lora' && o.method !== 'qlora') throw new OptionError(`--init-lora-weights applies to --method lora or qlora; got --method ${o.method}`);
  if (o.loftqBits !== 4) throw new OptionError(`--loftq-bits must be 4 (LoftQ's NF4 quantizer; 8-bit LoftQ is not supported); got ${o.loftqBits}`);
  if (init !== 'loftq' && (given('loftqBits') || given('loftqIter'))) throw new OptionError(`--loftq-bits and --loftq-iter apply to --init-lora-weights loftq; got '${init}'`);
}

/** Methods whose adapters fold into the base weights (prompt-learning methods have nothing to fold). */
export const MERGEABLE_METHODS: readonly Method[] = ['full', 'lora', 'qlora', 'dora', 'ia3'];

/**
 * `--merge-and-export`: the method must merge and the folder must be absent or empty,
 * checked before anything is loaded so that a long run never ends in a refusal.
 */
function checkMergeAndExport(method: string, dir: string): void {
  if (!(MERGEABLE_METHODS as readonly string[]).includes(method)) {
    throw new OptionError(`--merge-and-export: method '${method}' cannot be merged into the base weights (mergeable: ${MERGEABLE_METHODS.join(', ')})`);
  }
  if (existsSync(dir) && (!statSync(dir).isDirectory() || readdirSync(dir).length > 0)) {
    throw new OptionError(`--merge-and-export: '${dir}' exists and is not an empty directory; choose a new folder`);
  }
}

function convert(s: Spec, text: string): unknown {
  const flag = `--${flagOf(s.key)}`;
  if ((s.key === 'lr' || s.nullable) && text === '') return null;
  switch (s.kind) {
    case 'string':
      if (s.choices && !s.choices.includes(text)) throw new OptionError(`${flag} must be one of ${s.choices.join(', ')}; got '${text}'`);
      return text;
    case 'flag':
      if (text !== 'true' && text !== 'false') throw new OptionError(`${flag} is a flag (true or false in --config); got '${text}'`);
      return text === 'true';
    case 'list': {
      const items = text.split(',').map((t) => t.trim());
      if (items.some((t) => t !== 'all-linear' && !/^[A-Za-z_][\w.]*$/.test(t))) {
        throw new OptionError(`${flag} must be comma-separated module names like q_proj,v_proj, or 'all-linear'; got '${text}'`);
      }
      return items;
    }
    case 'int':
    case 'posint': {
      const n = Number(text);
      const min = s.kind === 'posint' ? 1 : 0;
      if (text.trim() === '' || !Number.isInteger(n) || n < min) throw new OptionError(`${flag} must be an integer >= ${min}; got '${text}'`);
      return n;
    }
    case 'number': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n < 0) throw new OptionError(`${flag} must be a non-negative number; got '${text}'`);
      return n;
    }
    case 'posnumber': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new OptionError(`${flag} must be a positive number; got '${text}'`);
      return n;
    }
    case 'prob': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new OptionError(`${flag} must be a number in [0, 1]; got '${text}'`);
      return n;
    }
  }
}

/** Reads a `--config` JSON object into option-name -> text, naming the file and any unknown key. */
function readConfig(path: string): Record<string, string> {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new OptionError(`--config ${path}: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new OptionError(`--config ${path}: must be a JSON object of options`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc)) {
    const spec = SPECS.find((s) => s.key === k || flagOf(s.key) === k);
    if (!spec) throw new OptionError(`--config ${path}: unknown option '${k}' (options: ${SPECS.map((s) => s.key).join(', ')})`);
    if (!['string', 'number'].includes(typeof v) && !(Array.isArray(v) && spec.kind === 'list') && !(typeof v === 'boolean' && spec.kind === 'flag')) {
      throw new OptionError(`--config ${path}: option '${k}' must be a string or number, got ${JSON.stringify(v)}`);
    }
    out[spec.key] = Array.isArray(v) ? v.join(',') : String(v);
  }
  return out;
}
