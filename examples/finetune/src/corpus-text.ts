/**
 * The text clean-up the corpora share, with no Node dependency, so a browser (the test
 * files' `?raw` imports of the corpus packages' data files) builds the same text as the
 * CLI's `corpus.ts`.
 */

/** Folds typographic quotes and dashes to ASCII so a small vocabulary covers the text. */
export function normaliseCorpusText(text: string): string {
  return text
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/[\u2013\u2014]/g, '-')
    .replace(/\r/g, '')
    .replace(/[^\x20-\x7e\n]/g, ' ');
}

/** The speeches of a corpus joined as `stateOfTheUnion` joins them: each trimmed, blank line between, normalised. */
export function joinSpeeches(texts: readonly string[]): string {
  return normaliseCorpusText(texts.map((t) => t.trim()).join('\n\n'));
}
