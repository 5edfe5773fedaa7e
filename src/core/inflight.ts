/**
 * A bounded, ordered window of pending work: the producer pushes promises (a batch given to a
 * worker, a job posted to a thread) and the results are consumed one by one in push order.
 * `push` waits, consuming the oldest results, while `limit` are pending, so a fast producer is
 * held back by a slow consumer (a disk, a hash) instead of piling results up in memory.
 * Used by every pipeline that keeps work in flight: convert, the celf writer, parallel hashing.
 */
export class InFlight<T> {
  private readonly queue: Promise<T>[] = [];

  /**
   * @param limit  most pending results (at least 1)
   * @param consume  called with each result in push order; the window waits for it
   */
  constructor(
    private readonly limit: number,
    private readonly consume: (result: T) => Promise<void> | void,
  ) {
    if (!(limit >= 1)) throw new RangeError(`in-flight limit ${limit} is below 1`);
  }

  /** Pending results. */
  get size(): number {
    return this.queue.length;
  }

  /** Add one pending result; returns once fewer than `limit` are pending. */
  async push(p: Promise<T>): Promise<void> {
    // a rejection is reported when its turn comes (or dropped when an earlier one failed)
    p.catch(() => undefined);
    this.queue.push(p);
    while (this.queue.length >= this.limit) await this.next();
  }

  /** Consume every pending result, in order. */
  async drain(): Promise<void> {
    while (this.queue.length) await this.next();
  }

  private async next(): Promise<void> {
    await this.consume(await this.queue.shift()!);
  }
}
