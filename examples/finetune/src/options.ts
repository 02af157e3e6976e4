import { parseArgs } from 'node:util';

/** Fine-tuning method: all weights, LoRA adapters, or LoRA on a 4-bit (NF4) base. */
export type Method = 'full' | 'lora' | 'qlora';

/** Command-line options of the fine-tuning CLI (all have defaults). */
export interface FinetuneOptions {
  method: Method;
  steps: number;
  lr: number;
  rank: number;
  alpha: number;
  dropout: number;
  targets: string[];
  batchSize: number;
  seqLen: number;
  evalEvery: number;
  evalBatches: number;
  warmupSteps: number;
  out: string;
  baseDir: string;
  baseSteps: number;
  backend: 'webgpu' | 'cpu';
  seed: number;
  maxNewTokens: number;
  prompt: string;
  corpusChars: number;
}

const HELP = `Fine-tune a small GPT-2 on State of the Union addresses.

The first run builds the base model (a byte-level BPE tokenizer and a GPT-2 pretrained on
Moby-Dick) into --base-dir; later runs reuse it.

Usage: npm run finetune -- [options]
  --method full|lora|qlora   what to train (default qlora: LoRA on an NF4 base)
  --steps N                  optimizer steps (default 80)
  --lr X                     peak learning rate (default 2e-3; full: 3e-4)
  --rank R --alpha A         LoRA rank and alpha (default 8, 16)
  --dropout P                LoRA dropout (default 0.05)
  --targets a,b              LoRA target modules (default c_attn,c_proj,c_fc)
  --batch-size B --seq-len T batch shape (default 8 x 64)
  --eval-every N             evaluation interval in steps (default 20)
  --warmup-steps N           linear warmup before cosine decay (default 10)
  --out DIR                  where the adapter (PEFT format) or model goes (default out/finetune-<method>)
  --base-dir DIR             base model directory (default examples/finetune/.cache/base)
  --base-steps N             pretraining steps when the base is built (default 250)
  --backend webgpu|cpu       compute backend (default webgpu)
  --seed N                   seed of init, sampling and batches (default 0)
  --prompt TEXT              prompt of the before/after samples
  --max-new-tokens N         sample length (default 48)
  --help`;

/** Parses `argv` (without node and script) into options, or prints help and exits. */
export function parseOptions(argv: string[]): FinetuneOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      method: { type: 'string', default: 'qlora' },
      steps: { type: 'string', default: '80' },
      lr: { type: 'string' },
      rank: { type: 'string', default: '8' },
      alpha: { type: 'string', default: '16' },
      dropout: { type: 'string', default: '0.05' },
      targets: { type: 'string', default: 'c_attn,c_proj,c_fc' },
      'batch-size': { type: 'string', default: '8' },
      'seq-len': { type: 'string', default: '64' },
      'eval-every': { type: 'string', default: '20' },
      'eval-batches': { type: 'string', default: '4' },
      'warmup-steps': { type: 'string', default: '10' },
      out: { type: 'string' },
      'base-dir': { type: 'string', default: 'examples/finetune/.cache/base' },
      'base-steps': { type: 'string', default: '250' },
      backend: { type: 'string', default: 'webgpu' },
      seed: { type: 'string', default: '0' },
      prompt: { type: 'string', default: 'Mr. Speaker, Mr. Vice President, members of Congress, ' },
      'max-new-tokens': { type: 'string', default: '48' },
      'corpus-chars': { type: 'string', default: '400000' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const method = values.method as Method;
  if (!['full', 'lora', 'qlora'].includes(method)) throw new Error(`--method must be full, lora or qlora, got '${values.method}'`);
  const backend = values.backend as 'webgpu' | 'cpu';
  if (backend !== 'webgpu' && backend !== 'cpu') throw new Error(`--backend must be webgpu or cpu, got '${values.backend}'`);
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got '${v}'`);
    return n;
  };
  const num = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got '${v}'`);
    return n;
  };
  return {
    method,
    steps: int('steps', values.steps),
    lr: values.lr === undefined ? (method === 'full' ? 3e-4 : 2e-3) : num('lr', values.lr),
    rank: int('rank', values.rank),
    alpha: num('alpha', values.alpha),
    dropout: num('dropout', values.dropout),
    targets: values.targets.split(',').map((s) => s.trim()).filter(Boolean),
    batchSize: int('batch-size', values['batch-size']),
    seqLen: int('seq-len', values['seq-len']),
    evalEvery: int('eval-every', values['eval-every']),
    evalBatches: int('eval-batches', values['eval-batches']),
    warmupSteps: int('warmup-steps', values['warmup-steps']),
    out: values.out ?? `out/finetune-${method}`,
    baseDir: values['base-dir'],
    baseSteps: int('base-steps', values['base-steps']),
    backend,
    seed: int('seed', values.seed),
    maxNewTokens: int('max-new-tokens', values['max-new-tokens']),
    prompt: values.prompt,
    corpusChars: int('corpus-chars', values['corpus-chars']),
  };
}
