// Collects one contribution from each expected institution until all have answered (reported, dropped
// or rejected) or the deadline passes; then the phase closes and later contributions are refused.

export type Outcome<T> = { status: 'reported'; value: T } | { status: 'rejected' | 'declined' | 'dropped'; detail: string };

export class PhaseCollector<T> {
  private readonly outcomes = new Map<string, Outcome<T>>();
  private closed = false;
  private resolveDone!: () => void;
  private readonly done: Promise<void>;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    readonly expected: ReadonlySet<string>,
    deadlineMs: number,
  ) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    if (expected.size === 0) this.close();
    else this.timer = setTimeout(() => this.close(), Math.max(0, deadlineMs));
  }

  isOpenFor(id: string): boolean {
    return !this.closed && this.expected.has(id) && !this.outcomes.has(id);
  }

  /** Why a contribution from `id` cannot be taken now (prefixed with the envelope field at fault, as a refusal's message), or null when it can. */
  refusal(id: string): string | null {
    if (this.closed) return `envelope.round: the ${this.name} phase is closed`;
    if (!this.expected.has(id)) return `envelope.institution_id: institution "${id}" is not a participant of this ${this.name} phase`;
    if (this.outcomes.has(id)) return `envelope.institution_id: institution "${id}" already answered this ${this.name} phase`;
    return null;
  }

  report(id: string, value: T): void {
    this.settle(id, { status: 'reported', value });
  }

  reject(id: string, status: 'rejected' | 'declined' | 'dropped', detail: string): void {
    if (this.isOpenFor(id)) this.settle(id, { status, detail });
  }

  private settle(id: string, outcome: Outcome<T>): void {
    const why = this.refusal(id);
    if (why) throw new Error(why);
    this.outcomes.set(id, outcome);
    if (this.outcomes.size === this.expected.size) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const id of this.expected) if (!this.outcomes.has(id)) this.outcomes.set(id, { status: 'dropped', detail: 'no answer before the deadline' });
    this.resolveDone();
  }

  /** Resolves when the phase closes. */
  wait(): Promise<void> {
    return this.done;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  reported(): Map<string, T> {
    const out = new Map<string, T>();
    for (const [id, o] of this.outcomes) if (o.status === 'reported') out.set(id, o.value);
    return out;
  }

  all(): Map<string, Outcome<T>> {
    return new Map(this.outcomes);
  }
}
