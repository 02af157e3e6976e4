/** The fixture written by tools/golden/sft_golden.py (transformers' tokenizer and TRL's SFTTrainer outputs). */
import tokenizerJson from '../../../default-model/model/tokenizer.json?raw';
import tokenizerConfigJson from '../../../default-model/model/tokenizer_config.json?raw';
import golden from './fixtures/sft/sft_golden.json' with { type: 'json' };
import type { ChatMessage } from '../tokenizer/index.js';
import { Tokenizer, type TokenizerConfig } from '../tokenizer/index.js';

export interface SftGolden {
  versions: Record<string, string>;
  texts: string[];
  templatePostProcessor: unknown;
  encode: { tokenizer: 'default' | 'template'; options: Record<string, unknown>; input_ids: number[][]; attention_mask: number[][] }[];
  noPadError: string;
  conversations: ChatMessage[][];
  templates: Record<string, string>;
  chat: { template: string; conversation: number; add_generation_prompt: boolean; text: string; ids: number[] }[];
  samples: { text: { text: string }[]; prompt_completion: { prompt: string; completion: string }[]; messages: { messages: ChatMessage[] }[] };
  sft: {
    name: string;
    config: Record<string, unknown>;
    rows: { input_ids: number[]; labels: number[]; seq_lengths?: number[] }[];
    collated_rows: number;
    batch: Record<string, number[][]>;
  }[];
}

export const GOLDEN = golden as unknown as SftGolden;

/** The default model's tokenizer, optionally with another post-processor or without a pad token. */
export function defaultTokenizer(variant: { postProcessor?: unknown; dropPad?: boolean } = {}): Tokenizer {
  const json = JSON.parse(tokenizerJson) as Record<string, unknown>;
  const config = JSON.parse(tokenizerConfigJson) as TokenizerConfig;
  if (variant.postProcessor !== undefined) json.post_processor = variant.postProcessor;
  if (variant.dropPad) delete config.pad_token;
  return Tokenizer.fromJSON(json, config);
}

/** One SFT case of the fixture by name. */
export function sftCase(name: string): SftGolden['sft'][number] {
  const c = GOLDEN.sft.find((s) => s.name === name);
  if (!c) throw new Error(`sft_golden.json has no case ${name}`);
  return c;
}
