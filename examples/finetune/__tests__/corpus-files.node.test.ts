/** The end-to-end tests' corpus (read through `?raw` imports, browser-safe) is the CLI's, character for character. */
import { expect, it } from 'vitest';
import { stateOfTheUnion } from '../src/corpus.js';
import { SOTU_2001_2004 } from './sotu-2001-2004.js';

it('SOTU_2001_2004 equals stateOfTheUnion(2001, 2004).text', () => {
  const cli = stateOfTheUnion(2001, 2004).text;
  expect(SOTU_2001_2004.length).toBe(cli.length);
  expect(SOTU_2001_2004 === cli).toBe(true);
  expect(SOTU_2001_2004.startsWith('Mr. Speaker, Mr. Vice President, Members of Congress: ')).toBe(true);
});
