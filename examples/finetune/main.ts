/**
 * The fine-tuning CLI: `npm run finetune -- --help`. See src/run.ts for what it does,
 * src/cli.ts for how errors print.
 */
import { main } from './src/cli.js';

void main(process.argv.slice(2)).then((code) => process.exit(code));
