import type { PTuningConfig, PrefixTuningConfig, PromptTuningConfig } from '@webpeft/peft';

/** The CLI's prompt-learning methods (virtual tokens in front of every sequence). */
export const PROMPT_METHODS = ['prompt', 'prefix', 'p-tuning'] as const;

/** A CLI prompt-learning method name. */
export type PromptMethod = (typeof PROMPT_METHODS)[number];

/** P-tuning's encoder of the virtual tokens (`--encoder`). */
export const PROMPT_ENCODERS = ['mlp', 'lstm'] as const;

/** True when `method` is one of {@link PROMPT_METHODS}. */
export function isPromptMethod(method: string): method is PromptMethod {
  return (PROMPT_METHODS as readonly string[]).includes(method);
}

/**
 * The PEFT config of a CLI prompt-learning method: `prompt` is prompt tuning (Lester et
 * al. 2021) with its rows initialised from sampled vocabulary embeddings (PEFT's
 * `SAMPLE_VOCAB`: on the model's scale, so training starts from a prompt of real tokens),
 * `prefix` is prefix tuning (Li and Liang 2021; P-tuning v2) without projection, and
 * `p-tuning` is P-tuning (Liu et al. 2021) with an MLP or LSTM encoder.
 */
export function promptMethodConfig(method: PromptMethod, numVirtualTokens: number, encoder: (typeof PROMPT_ENCODERS)[number]): PromptTuningConfig | PrefixTuningConfig | PTuningConfig {
  switch (method) {
    case 'prompt':
      return { peftType: 'PROMPT_TUNING', numVirtualTokens, promptTuningInit: 'SAMPLE_VOCAB' };
    case 'prefix':
      return { peftType: 'PREFIX_TUNING', numVirtualTokens };
    case 'p-tuning':
      return { peftType: 'P_TUNING', numVirtualTokens, encoderReparameterizationType: encoder === 'lstm' ? 'LSTM' : 'MLP' };
  }
}
