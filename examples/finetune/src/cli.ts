/**
 * The CLI's outer layer: runs {@link runFinetune} and turns an error into one line on
 * stderr (its message, newlines folded) and an exit code; `--debug` prints the stack.
 */
import { OptionError } from './options.js';
import { type RunOutput, runFinetune } from './run.js';

/** Where {@link main} prints: the run's output, and error lines. */
export interface CliOutput extends RunOutput {
  error: (line: string) => void;
}

/** An error as one line: the message with its line breaks folded (`a:\n  b` -> `a: b`, other breaks -> `; `). */
export function oneLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message
    .trim()
    .replace(/:\s*\n\s*/g, ': ')
    .replace(/\s*\n\s*/g, '; ');
}

/**
 * Runs the CLI on `argv`; returns the exit code: 0 on success, 2 for a bad option or
 * output location (nothing was loaded), 1 for any other error. Errors print as
 * `error: <one line>`; with `--debug` in `argv`, as the full stack.
 */
export async function main(argv: string[], out: CliOutput = { log: (s) => console.log(s), progress: process.stderr, error: (s) => console.error(s) }): Promise<number> {
  try {
    await runFinetune(argv, out);
    return 0;
  } catch (e) {
    if (argv.includes('--debug')) out.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    else out.error(`error: ${oneLine(e)}${e instanceof OptionError ? '' : ' (--debug prints the stack trace)'}`);
    return e instanceof OptionError ? 2 : 1;
  }
}
