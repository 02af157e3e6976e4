/** Folder, relative to the page, from which the app serves the default model's files (see vite.config.ts). */
export const DEFAULT_MODEL_ROUTE = 'default-model';
