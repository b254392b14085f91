/**
 * `sessionizer report`: the HTML page of a replay's outputs, rendered in headless Debian Chromium with every
 * request that is not `file:` or `data:` blocked and failing the test. Each of the five charts must be there with
 * points, drawn marks of non-zero size, a title, a description and axis labels; the charted numbers must add up to
 * the lines in the output files. Saves docs/report.png (the README's screenshot).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { replay } from '../../cli/replay.ts';
import { type ReportData, renderReport, writeReport } from '../../cli/report.ts';
import { linesByDt, NASTY_PAGE, writeVisitFiles } from '../helpers/outputs.ts';

const CHROMIUM = '/usr/bin/chromium';
/**
 * Without Debian's Chromium the browser test is skipped with a message on a developer's machine; in CI
 * (`SESSIONIZER_REQUIRE_CHROMIUM=1`, set by .ci/run) it fails instead, so that it cannot pass unseen.
 */
const missing = 'Debian chromium not installed: apt-get install chromium';
if (!existsSync(CHROMIUM) && process.env.SESSIONIZER_REQUIRE_CHROMIUM === '1') throw new Error(missing);
const skipBrowser = existsSync(CHROMIUM) ? false : missing;
const root = fileURLToPath(new URL('../..', import.meta.url));
const CHARTS = [
  'sessions-per-hour',
  'session-duration',
  'pages-per-session',
  'late-visit-ratio',
  'top-entry-pages',
];

let tmp: string;
let out: string;
let html: string;
let htmlFile: string;
let sessionLines: Record<string, unknown>[];
let lateLines: Record<string, unknown>[];

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'sessionizer-report-test-'));
  out = join(tmp, 'out');
  const files = await writeVisitFiles(join(tmp, 'in'), { files: 6, users: 60, seed: 3, brokenGzip: true });
  await replay({ files, out, flush: true, gapMs: 10 * 60_000 });
  sessionLines = [...(await linesByDt(out, 'sessions/')).values()].flat();
  lateLines = [...(await linesByDt(out, 'late-visits/')).values()].flat();
  htmlFile = join(tmp, 'report', 'report.html');
  const written = await writeReport({ dir: out }, htmlFile, {
    source: 'a replay of 6 generated visit files',
    generatedAt: new Date(Date.UTC(2026, 1, 17, 9, 0, 0)), // a stable screenshot
  });
  assert.equal(written.sessions, sessionLines.length);
  html = await readFile(htmlFile, 'utf8');
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('the report page', () => {
  it('is one self-contained file: inline CSS and SVG, no scripts, no external resources', () => {
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /<style>/);
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(|@font-face/i);
    assert.doesNotMatch(html, /\b(src|href)=["']?(https?:)?\/\//i);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    for (const name of CHARTS)
      assert.match(html, new RegExp(`<svg [^>]*data-chart="${name}" data-points="[1-9]\\d*"`));
  });

  it('escapes text from the input files', () => {
    assert.ok(!html.includes(NASTY_PAGE));
    assert.ok(html.includes('&lt;img src=x onerror=&quot;alert(1)&quot;&gt;,x.html'));
  });

  it('renders with no data: every chart there, with 0 points and a "no data" note', () => {
    const empty: ReportData = {
      totals: {
        sessions: 0,
        users: 0,
        visits: 0,
        lateVisits: 0,
        rejected: 0,
        firstStart: null,
        lastEnd: null,
        medianDurationMs: null,
      },
      sessionsOverTime: { step: 3_600_000, buckets: [] },
      durations: [],
      pagesPerSession: [],
      lateRatio: { step: 3_600_000, points: [] },
      topEntryPages: [],
      perDay: [],
      rejectedReasons: [],
    };
    const page = renderReport(empty, { source: 'nothing' });
    for (const name of CHARTS) assert.match(page, new RegExp(`data-chart="${name}" data-points="0"`));
    assert.equal(page.match(/no data/g)?.length, CHARTS.length);
    assert.doesNotMatch(page, /NaN|Infinity|undefined/);
    assert.doesNotMatch(html, /NaN|Infinity|undefined/);
  });
});

describe('the report in headless Chromium', () => {
  let browser: Browser;
  before(async () => {
    if (skipBrowser) return;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });
  after(async () => {
    await browser?.close();
  });

  it('draws the five charts from the outputs, requesting nothing but the file', {
    skip: skipBrowser,
  }, async () => {
    const context = await browser.newContext({
      viewport: { width: 1360, height: 900 },
      deviceScaleFactor: 1,
    });
    const requests: string[] = [];
    const blocked: string[] = [];
    const problems: string[] = [];
    context.on('request', (r) => requests.push(r.url()));
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      blocked.push(url);
      return route.abort('blockedbyclient');
    });
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(pathToFileURL(htmlFile).href, { waitUntil: 'load' });

    assert.deepEqual(blocked, [], 'requests other than file: or data:');
    assert.deepEqual(
      requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')),
      [],
      'requests other than file: or data:',
    );
    assert.deepEqual(problems, [], 'console errors (a CSP violation would show here)');
    assert.equal(await page.locator('script, img, iframe, object, embed, link').count(), 0);

    for (const name of CHARTS) {
      const svg = page.locator(`svg[data-chart="${name}"]`);
      assert.equal(await svg.count(), 1, name);
      const points = Number(await svg.getAttribute('data-points'));
      assert.ok(points > 0, `${name}: data-points ${points}`);
      assert.equal(await svg.getAttribute('role'), 'img');
      // the accessible name and description are the <title> and <desc>
      const labelledBy = (await svg.getAttribute('aria-labelledby'))!.split(' ');
      assert.equal(labelledBy.length, 2);
      const title = (await page.locator(`svg[data-chart="${name}"] > title`).textContent())!;
      const desc = (await page.locator(`svg[data-chart="${name}"] > desc`).textContent())!;
      assert.equal(await page.locator(`[id="${labelledBy[0]}"]`).textContent(), title);
      assert.equal(await page.locator(`[id="${labelledBy[1]}"]`).textContent(), desc);
      assert.ok(title.length > 3 && desc.length > 20, `${name}: ${title} / ${desc}`);
      assert.equal(await svg.locator('.chart-title').textContent(), title);
      const axes = await svg.locator('.axis-label').allTextContents();
      assert.equal(axes.length, 2, `${name}: axis labels`);
      assert.ok(axes.every((a) => a.length > 2));
      const box = await svg.boundingBox();
      assert.ok(box && box.width > 300 && box.height > 150, `${name}: svg box ${JSON.stringify(box)}`);
      // drawn marks (rects, circles) with a real size, inside the chart
      const marks = svg.locator('.mark');
      const n = await marks.count();
      assert.ok(n > 0, `${name}: no marks`);
      let drawn = 0;
      const rects = await marks.evaluateAll((els) =>
        els.map((e) => {
          const r = e.getBoundingClientRect();
          return { left: r.left, right: r.right, width: r.width, height: r.height };
        }),
      );
      for (const b of rects) {
        if (b.width > 0 && b.height > 0) {
          drawn++;
          assert.ok(
            b.left >= box!.x - 1 && b.right <= box!.x + box!.width + 1,
            `${name}: mark outside the chart`,
          );
        }
      }
      assert.equal(drawn, n, `${name}: marks of zero size`);
      if (name === 'late-visit-ratio') {
        assert.equal(n, points, 'a marker per point');
        const line = await svg.locator('path.line').boundingBox();
        assert.ok(line && line.width > 0, 'the line');
      } else {
        assert.ok(n <= points);
      }
    }

    // the charted numbers add up to the output files
    const sumOf = async (name: string, pattern: RegExp) => {
      const titles = await page.locator(`svg[data-chart="${name}"] .mark > title`).allTextContents();
      return titles.reduce((a, t) => a + Number(pattern.exec(t)![1]!.replaceAll(',', '')), 0);
    };
    const sessionsPattern = /: ([\d,]+) sessions$/;
    assert.equal(await sumOf('sessions-per-hour', sessionsPattern), sessionLines.length);
    assert.equal(await sumOf('session-duration', sessionsPattern), sessionLines.length);
    assert.equal(await sumOf('pages-per-session', sessionsPattern), sessionLines.length);
    assert.equal(await sumOf('late-visit-ratio', /: ([\d,]+) late of/), lateLines.length);
    const visits = sessionLines.reduce((a, s) => a + (s.visit_count as number), 0);
    assert.equal(await sumOf('late-visit-ratio', /late of ([\d,]+) visits/), visits + lateLines.length);
    const entries = await page.locator('svg[data-chart="top-entry-pages"] .mark > title').allTextContents();
    assert.ok(entries.includes(`${NASTY_PAGE}: 1 sessions`), entries.join('\n'));
    const home = sessionLines.filter(
      (s) => (s.visited_pages as { page: string }[])[0]!.page === 'home.html',
    ).length;
    assert.equal(entries[0], `home.html: ${home} sessions`);

    await mkdir(join(root, 'docs'), { recursive: true });
    await page.screenshot({ path: join(root, 'docs', 'report.png'), fullPage: true });
    await context.close();
  });
});
