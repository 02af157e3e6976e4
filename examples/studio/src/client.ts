/**
 * The page's side of the worker protocol: typed requests that resolve with their reply
 * (or reject with a {@link RequestError} carrying the worker's error kind), and a
 * listener for the training events.
 */
import type { Control, Replies, Request, StudioErrorInfo, WorkerEvent } from './protocol.js';

/** A request the worker answered with an error. */
export class RequestError extends Error {
  override name = 'RequestError';
  constructor(readonly info: StudioErrorInfo) {
    super(info.message);
  }
}

type Op = Request['op'];
/** The fields of request `K` other than its id. */
type Body<K extends Op> = Omit<Extract<Request, { op: K }>, 'id' | 'op'>;

/** Talks to the training worker. */
export class WorkerClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly worker: Worker,
    onEvent: (e: WorkerEvent) => void,
  ) {
    worker.onmessage = (msg: MessageEvent<WorkerEvent>) => {
      const e = msg.data;
      if (e.type !== 'reply') return onEvent(e);
      const p = this.pending.get(e.id);
      this.pending.delete(e.id);
      if (!p) return;
      if (e.ok) p.resolve(e.value);
      else p.reject(new RequestError(e.error));
    };
    worker.onerror = (err) => {
      // A worker that fails to start (or throws outside a request) fails every pending request.
      const info: StudioErrorInfo = { kind: 'error', message: `the training worker failed: ${err.message || 'unknown error'}` };
      for (const p of this.pending.values()) p.reject(new RequestError(info));
      this.pending.clear();
    };
  }

  /** Sends request `op` and resolves with its reply. */
  request<K extends Op>(op: K, body: Body<K>, transfer: Transferable[] = []): Promise<Replies[K]> {
    const id = this.nextId++;
    return new Promise<Replies[K]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...body, id, op }, transfer);
    });
  }

  /** Pause, resume or stop the run in progress. */
  control(op: Control['op']): void {
    this.worker.postMessage({ op } satisfies Control);
  }
}
