/**
 * The live charts (uPlot): train and eval loss per step, and device memory by tag per
 * step. Each chart keeps its own columns, follows its container's width, and mirrors
 * its newest values in the container's `aria-label` (a canvas says nothing to a screen
 * reader).
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const MIB = 2 ** 20;
/** Colours of the series (colour-blind safe: Okabe-Ito). */
const COLOURS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#000000'];

/** A line chart over steps whose series are appended to one step at a time. */
class StepChart {
  private readonly plot: uPlot;
  private readonly columns: (number | null)[][];
  private readonly observer: ResizeObserver;

  constructor(
    private readonly container: HTMLElement,
    private readonly title: string,
    private readonly series: string[],
    private readonly unit: string,
  ) {
    this.columns = [[], ...series.map(() => [])];
    const opts: uPlot.Options = {
      title,
      width: this.width(),
      height: 220,
      scales: { x: { time: false } },
      axes: [{ label: 'step' }, { label: unit, size: 60 }],
      series: [{ label: 'step' }, ...series.map((label, i) => ({ label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: true, points: { show: true, size: 4 } }))],
    };
    this.plot = new uPlot(opts, this.columns as uPlot.AlignedData, container);
    this.observer = new ResizeObserver(() => this.plot.setSize({ width: this.width(), height: 220 }));
    this.observer.observe(container);
    this.describe();
  }

  /** Adds (or, for a repeated step, fills in) the values of `step`; `null` leaves a series without a point. */
  add(step: number, values: (number | null)[]): void {
    const xs = this.columns[0];
    let at = xs.lastIndexOf(step);
    if (at < 0) {
      xs.push(step);
      for (let s = 1; s < this.columns.length; s++) this.columns[s].push(null);
      at = xs.length - 1;
    }
    values.forEach((v, s) => {
      if (v !== null) this.columns[s + 1][at] = v;
    });
    this.plot.setData(this.columns as uPlot.AlignedData);
    this.container.dataset.points = String(xs.length);
    this.describe();
  }

  /** Empties the chart for a new run. */
  clear(): void {
    for (const c of this.columns) c.length = 0;
    this.plot.setData(this.columns as uPlot.AlignedData);
    this.container.dataset.points = '0';
    this.describe();
  }

  private describe(): void {
    const n = this.columns[0].length;
    const last = this.series.map((name, s) => {
      const col = this.columns[s + 1];
      for (let i = col.length - 1; i >= 0; i--) if (col[i] !== null) return `${name} ${(col[i] as number).toFixed(3)}`;
      return `${name} none`;
    });
    this.container.setAttribute('aria-label', `${this.title}: ${n} steps${n ? `; latest ${last.join(', ')} ${this.unit}` : ''}`);
  }

  private width(): number {
    return Math.max(240, Math.floor(this.container.clientWidth || 600));
  }
}

/** Train loss (each step) and held-out loss (at eval steps). */
export class LossChart {
  private readonly chart: StepChart;

  constructor(container: HTMLElement) {
    this.chart = new StepChart(container, 'Loss', ['train loss', 'eval loss'], 'nats/token');
  }

  train(step: number, loss: number): void {
    this.chart.add(step, [loss, null]);
  }

  eval(step: number, loss: number): void {
    this.chart.add(step, [null, loss]);
  }

  clear(): void {
    this.chart.clear();
  }
}

/** Device memory per tag (weights, grads, optimizer, activations, quant, other) at each step's peak, MiB. */
export class MemoryChart {
  private readonly chart: StepChart;

  constructor(
    container: HTMLElement,
    private readonly tags: readonly string[],
  ) {
    this.chart = new StepChart(container, 'Device memory by tag (peak of each step)', [...tags], 'MiB');
  }

  add(step: number, bytesByTag: Record<string, number>): void {
    this.chart.add(
      step,
      this.tags.map((t) => (bytesByTag[t] ?? 0) / MIB),
    );
  }

  clear(): void {
    this.chart.clear();
  }
}
