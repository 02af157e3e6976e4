/**
 * Chat templates: the Jinja `chat_template` of `tokenizer_config.json`, rendered with
 * `@huggingface/jinja` (the renderer transformers.js uses) in the context transformers'
 * `apply_chat_template` builds: `messages`, `add_generation_prompt`, the special-token
 * strings (`bos_token`, `eos_token`, ...); `raise_exception` and `strftime_now` are the
 * renderer's own built-ins.
 */
import { Template } from '@huggingface/jinja';

/** One chat turn, as Hugging Face datasets and chat templates hold it. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

/** Options of `Tokenizer.applyChatTemplate`; names follow transformers' `apply_chat_template`. */
export interface ChatTemplateOptions {
  /** A template string, or the name of one of the config's named templates; default the config's (`default`). */
  chatTemplate?: string;
  /** Append the template's assistant header so that a model continues as the assistant. */
  addGenerationPrompt?: boolean;
  /** Return token ids (encoded without adding special tokens, as transformers) instead of the text. */
  tokenize?: boolean;
  /** Extra variables passed to the template (transformers' `**kwargs`), e.g. `tools`. */
  templateVariables?: Record<string, unknown>;
}

/** What rendering needs of a tokenizer. */
export interface ChatTemplateSource {
  readonly config: { chat_template?: string | { name: string; template: string }[] | null };
  readonly specialTokens: Readonly<Record<string, string>>;
}

/** A chat template that failed to parse or render, naming the template and the Jinja error. */
export class ChatTemplateError extends Error {
  constructor(
    readonly templateName: string,
    override readonly cause: unknown,
  ) {
    super(`chat template ${templateName}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'ChatTemplateError';
  }
}

/** Private-use characters marking `{% generation %}` blocks in a rendered text (see {@link renderWithGenerationSpans}). */
const GEN_OPEN = '\uE000';
const GEN_CLOSE = '\uE001';

/**
 * The template text and a name for error messages: `options.chatTemplate` (a template, or
 * the name of a named config template), else the config's single or `default` template.
 */
export function resolveChatTemplate(tok: ChatTemplateSource, chatTemplate?: string): { name: string; template: string } {
  const configured = tok.config.chat_template;
  const named = Array.isArray(configured) ? configured : [];
  if (chatTemplate !== undefined) {
    const hit = named.find((t) => t.name === chatTemplate);
    return hit ? { name: `'${hit.name}'`, template: hit.template } : { name: '(given as chatTemplate)', template: chatTemplate };
  }
  if (typeof configured === 'string') return { name: 'of tokenizer_config.json', template: configured };
  const def = named.find((t) => t.name === 'default');
  if (def) return { name: "'default' of tokenizer_config.json", template: def.template };
  const names = named.map((t) => t.name).join(', ');
  throw new ChatTemplateError(
    'of tokenizer_config.json',
    named.length > 0 ? `no template named 'default' (has ${names}); pass chatTemplate` : 'the tokenizer has no chat_template; pass chatTemplate',
  );
}

/**
 * Renders `messages` with the tokenizer's chat template. Text out; the tokenizer's
 * `applyChatTemplate` encodes it when asked.
 */
export function applyChatTemplate(tok: ChatTemplateSource, messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  const { name, template } = resolveChatTemplate(tok, options.chatTemplate);
  return render(name, template, tok, messages, options);
}

/**
 * Renders like {@link applyChatTemplate} and also returns the character spans `[start, end)`
 * inside `{% generation %}` ... `{% endgeneration %}` blocks (transformers'
 * `return_assistant_tokens_mask`): the assistant output a model is trained on.
 */
export function renderWithGenerationSpans(
  tok: ChatTemplateSource,
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions = {},
): { text: string; spans: [number, number][]; hasMarkers: boolean } {
  const { name, template } = resolveChatTemplate(tok, options.chatTemplate);
  const markers = /\{%(-?)\s*(end)?generation\s*(-?)%\}/g;
  const hasMarkers = markers.test(template);
  // A block tag that prints a marker keeps the tag's whitespace control and trim/lstrip
  // behaviour: the left `-` stays on the opening tag, the right `-` moves to the closing one.
  const marked = template.replace(markers, (_m, l: string, end: string | undefined, r: string) => `{%${l} if true %}${end ? GEN_CLOSE : GEN_OPEN}{% endif ${r}%}`);
  const raw = render(name, marked, tok, messages, options);
  const spans: [number, number][] = [];
  let text = '';
  let open = -1;
  for (const ch of raw) {
    if (ch === GEN_OPEN) {
      if (open >= 0) throw new ChatTemplateError(name, 'nested {% generation %} blocks');
      open = text.length;
    } else if (ch === GEN_CLOSE) {
      if (open < 0) throw new ChatTemplateError(name, '{% endgeneration %} without {% generation %}');
      spans.push([open, text.length]);
      open = -1;
    } else text += ch;
  }
  if (open >= 0) throw new ChatTemplateError(name, '{% generation %} without {% endgeneration %}');
  return { text, spans, hasMarkers };
}

function render(name: string, template: string, tok: ChatTemplateSource, messages: readonly ChatMessage[], options: ChatTemplateOptions): string {
  if (!Array.isArray(messages)) throw new ChatTemplateError(name, `messages must be an array, got ${typeof messages}`);
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new ChatTemplateError(name, e);
  }
  const context: Record<string, unknown> = {
    ...tok.specialTokens,
    ...options.templateVariables,
    messages,
    add_generation_prompt: options.addGenerationPrompt ?? false,
  };
  try {
    return compiled.render(context);
  } catch (e) {
    throw new ChatTemplateError(name, e);
  }
}
