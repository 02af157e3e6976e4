/**
 * The fine-tuning CLI: `npm run finetune -- --help`. See src/run.ts for what it does.
 */
import { OptionError } from './src/options.js';
import { runFinetune } from './src/run.js';

runFinetune(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: unknown) => {
    // A bad option is the user's to fix: one line, no stack.
    console.error(e instanceof OptionError ? `error: ${e.message}` : e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(e instanceof OptionError ? 2 : 1);
  },
);
