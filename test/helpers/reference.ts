/**
 * A brute-force batch sessionization, written apart from the core on purpose: what the pipeline's closed sessions
 * must equal once every file is processed and flushed (docs/design.md, section 2: the batch sessionization of the distinct non-late visits).
 * Like SQL: distinct visits, per user ordered by time, LAG over visit_time, a new session where the difference
 * exceeds the gap (or the session would exceed the maximum duration, cut greedily).
 */
export interface RefVisit {
  readonly userId: string;
  readonly t: number;
  readonly page: string;
}

export interface RefSession {
  readonly userId: string;
  readonly start: number;
  readonly end: number;
  readonly pages: readonly [number, string][];
}

/** The order of every list of sessions here: by user, then by start. */
const bySession = (a: RefSession, b: RefSession): number =>
  a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : a.start - b.start;

export function referenceSessionize(
  visits: readonly RefVisit[],
  gapMs: number,
  maxDurationMs: number | null = null,
): RefSession[] {
  const distinct = new Map<string, RefVisit>();
  for (const v of visits) distinct.set(JSON.stringify([v.userId, v.t, v.page]), v);
  const byUser = new Map<string, RefVisit[]>();
  for (const v of distinct.values()) byUser.set(v.userId, [...(byUser.get(v.userId) ?? []), v]);
  const out: RefSession[] = [];
  for (const [userId, list] of byUser) {
    list.sort((a, b) => a.t - b.t || (a.page < b.page ? -1 : a.page > b.page ? 1 : 0));
    let current: RefVisit[] = [];
    const close = () => {
      if (current.length === 0) return;
      out.push({
        userId,
        start: current[0]!.t,
        end: current[current.length - 1]!.t,
        pages: current.map((v) => [v.t, v.page] as [number, string]),
      });
      current = [];
    };
    for (const v of list) {
      const prev = current[current.length - 1];
      const first = current[0];
      if (
        prev &&
        (v.t - prev.t > gapMs || (maxDurationMs !== null && first && v.t - first.t > maxDurationMs))
      )
        close();
      current.push(v);
    }
    close();
  }
  return out.sort(bySession);
}

/** Sessions read back from the JSON lines the pipeline wrote, in the reference's shape and order. */
export function sessionsFromJsonLines(text: string): RefSession[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const s = JSON.parse(l) as {
        user_id: string;
        start_time: string;
        end_time: string;
        visited_pages: { page: string; visit_time: string }[];
      };
      return {
        userId: s.user_id,
        start: Date.parse(s.start_time),
        end: Date.parse(s.end_time),
        pages: s.visited_pages.map((p) => [Date.parse(p.visit_time), p.page] as [number, string]),
      };
    })
    .sort(bySession);
}

/** Sessions the core closed (a `PipelineDriver`'s `closed`), in the reference's shape and order. */
export function sessionsFromCore(
  closed: readonly {
    readonly userId: string;
    readonly start: number;
    readonly end: number;
    readonly visits: readonly { readonly t: number; readonly page: string }[];
  }[],
): RefSession[] {
  return closed
    .map((s) => ({
      userId: s.userId,
      start: s.start,
      end: s.end,
      pages: s.visits.map((v) => [v.t, v.page] as [number, string]),
    }))
    .sort(bySession);
}
