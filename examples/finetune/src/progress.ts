/** Where a {@link ProgressBar} writes (a `process.stderr`-like stream). */
export interface ProgressOutput {
  isTTY?: boolean;
  write(text: string): unknown;
}

/** A one-line progress bar on a TTY (plain lines every 10% elsewhere, e.g. in CI logs). */
export class ProgressBar {
  private readonly start = Date.now();
  private lastPrinted = -1;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly out: ProgressOutput = process.stderr,
  ) {}

  update(done: number, info = ''): void {
    const frac = this.total === 0 ? 1 : done / this.total;
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = frac > 0 ? elapsed * (1 / frac - 1) : 0;
    const line = `${this.label} ${bar(frac, 24)} ${done}/${this.total} ${info} ${elapsed.toFixed(0)}s<${eta.toFixed(0)}s`;
    if (this.out.isTTY) {
      this.out.write(`\r${line.padEnd(100)}`);
      if (done === this.total) this.out.write('\n');
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== this.lastPrinted || done === this.total) {
        this.lastPrinted = decile;
        this.out.write(`${line}\n`);
      }
    }
  }
}

function bar(frac: number, width: number): string {
  const full = Math.round(Math.min(1, Math.max(0, frac)) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}
