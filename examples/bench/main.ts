/**
 * `npm run bench` (after a build of @webpeft/tensor): times our WebGPU kernels next to
 * tfjs-backend-webgpu on the same adapter. `--json` prints one JSON object instead of
 * the table; `--runs N` sets the timed runs per measurement (default 5); `--only TEXT`
 * runs only the rows whose group and name contain TEXT (`A|B`: either).
 */
import { getBackend } from '@webpeft/tensor';
import './rows/index.ts';
import { setup } from './setup.ts';
import { type RowReport, formatTable, registeredRows, report } from './table.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;

const ctx = await setup(runs);
const reports: RowReport[] = [];
const selected = registeredRows().filter((r) => only === undefined || only.split('|').some((o) => `${r.group} ${r.name}`.includes(o)));
if (selected.length === 0) throw new Error(`--only ${only}: no row's group and name contain it`);
for (const row of selected) {
  if (!json) process.stderr.write(`running ${row.group} ${row.name}...\n`);
  try {
    reports.push(report(row, await row.run(ctx)));
  } catch (e) {
    // One row's failure (e.g. a tensor beyond the adapter's binding limit) is reported, not fatal.
    reports.push({ group: row.group, name: row.name, oursMs: NaN, note: `failed: ${(e as Error).message.split('\n')[0]}` });
  }
}

const info = getBackend('webgpu').adapterInfo;
const adapter = info ? `${info.vendor} ${info.architecture} ${info.description}`.trim() : 'unknown';
const peak = reports.find((r) => r.group === 'peak')?.oursGflops;
const measured = reports.filter((r) => r.group !== 'peak' && r.oursGflops !== undefined);
const best = measured.reduce<RowReport | undefined>((b, r) => (b && b.oursGflops! >= r.oursGflops! ? b : r), undefined);
const summary = {
  adapter,
  runs,
  peakGflops: peak,
  peakMethod: 'FMA-throughput kernel (independent vec4 fma chains, no memory traffic)',
  bestRow: best?.name,
  bestGflops: best?.oursGflops,
  bestFractionOfPeak: best && peak ? best.oursGflops! / peak : undefined,
};

if (json) {
  console.log(JSON.stringify({ ...summary, rows: reports }, null, 2));
} else {
  console.log(`adapter: ${adapter}; median of ${runs} runs after 2 warm-up runs; tfjs/ours > 1 means we are faster\n`);
  console.log(formatTable(reports));
  if (peak !== undefined) {
    console.log(
      `\npeak ${summary.peakGflops?.toFixed(2)} GFLOP/s (${summary.peakMethod}); best row ${summary.bestRow}: ${summary.bestGflops?.toFixed(2)} GFLOP/s = ${((summary.bestFractionOfPeak ?? 0) * 100).toFixed(1)}% of peak`,
    );
  }
}
process.exit(0);
