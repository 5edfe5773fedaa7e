/** Messages between the page and its worker. */
export type ToWorker =
  | { type: 'open'; file?: File; url?: string }
  | { type: 'hex'; space: 'phys' | 'virt'; addr: string; length: number };

export interface FetchedStats {
  requests: number;
  bytesFetched: number;
  retries: number;
  cacheHits: number;
  size: number;
}

export type FromWorker =
  | { type: 'progress'; step: string; fraction: number }
  | { type: 'report'; report: unknown; ms: number; fetched: FetchedStats | null }
  | { type: 'log'; ts: string[]; level: number[]; text: string[]; warnings: string[] }
  | { type: 'map'; starts: Float64Array; ends: Float64Array; states: Uint8Array; maxPfn: number; pageSize: number }
  | { type: 'hex'; space: 'phys' | 'virt'; addr: string; bytes: Uint8Array }
  | { type: 'fetched'; fetched: FetchedStats }
  | { type: 'error'; code: string; message: string }
  | { type: 'hexError'; code: string; message: string };
