/**
 * The training worker: one {@link StudioSession} driven by the page's messages, so
 * loading, training and generation never block the page. Requests are handled one at a
 * time, in order; controls (pause/resume/stop) act at once on the run in progress.
 */
import { describeError } from './errors.js';
import type { Control, Request, WorkerEvent } from './protocol.js';
import { StudioSession } from './session.js';

/** The worker global's messaging (typed here: the project's lib is DOM, not WebWorker). */
const port = self as unknown as { postMessage(message: WorkerEvent, transfer?: Transferable[]): void; onmessage: ((e: MessageEvent<Request | Control>) => void) | null };

const emit = (e: WorkerEvent): void => port.postMessage(e);
const session = new StudioSession(emit);
let queue: Promise<void> = Promise.resolve();

port.onmessage = (e) => {
  const msg = e.data;
  if (msg.op === 'pause' || msg.op === 'resume' || msg.op === 'stop') {
    session.control?.[msg.op]();
    return;
  }
  // A second request waits for the first: the session is not re-entrant.
  queue = queue.then(() => handle(msg));
};

async function handle(req: Request): Promise<void> {
  try {
    const value = await run(req);
    emit({ type: 'reply', id: req.id, ok: true, value });
  } catch (err) {
    emit({ type: 'reply', id: req.id, ok: false, error: describeError(err) });
  }
}

function run(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'load':
      return session.load(req.model);
    case 'train':
      return session.train(req.settings);
    case 'generate':
      return session.generate(req.prompt, req.maxNewTokens);
    case 'exportAdapter':
      return session.exportAdapter();
    case 'loadAdapter':
      return session.loadAdapter(req.files, req.quantizedBase);
    case 'mergeAndExport':
      return session.mergeAndExport();
    case 'combineAdapter':
      return session.combineAdapter(req.files, req.weights, req.options);
    case 'logits':
      return session.logits(req.prompt);
  }
}
