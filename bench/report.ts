/**
 * The results file's shape, the ratios taken inside one run, and `BENCHMARKS.md` with
 * an SVG bar chart per charted metric under `bench/results/`.
 *
 * Regenerate the page from a results file: `node --import tsx bench/report.ts FILE.json`.
 *
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Sizes } from './config.js';
import type { Machine } from './lib/machine.js';
import { round } from './lib/stats.js';
import { VARIANT_LABEL } from './scenarios/context.js';
import type { Metric, Row, ScenarioId, ScenarioResult, Variant } from './scenarios/context.js';

/** `bench/results/<date>.json` */
export interface RunResults {
  readonly schema: 1;
  readonly mode: 'full' | 'smoke';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationMs: number;
  readonly command: string;
  readonly machine: Machine;
  readonly loadAtEnd: readonly number[];
  /** True when `dist/` was older than `src/`: Portcullis numbers are of an older build. */
  readonly distStale: boolean;
  readonly sizes: Sizes;
  readonly scenarios: readonly ScenarioResult[];
  readonly ratios: readonly Ratio[];
}

/** Portcullis ÷ a baseline, for one metric of one case, measured in the same run. */
export interface Ratio {
  readonly scenario: ScenarioId;
  readonly case: string;
  readonly series: string;
  readonly metric: string;
  readonly baseline: Variant;
  readonly value: number;
}

const BASELINES: readonly Variant[] = ['raw-ws', 'raw-ws-coalesced', 'socketio'];

export function computeRatios(scenarios: readonly ScenarioResult[]): Ratio[] {
  const ratios: Ratio[] = [];
  for (const scenario of scenarios) {
    const metrics = scenario.metrics.filter((metric) => metric.ratio === true);
    for (const row of scenario.rows) {
      if (row.variant !== 'portcullis') continue;
      for (const baseline of scenario.rows) {
        if (baseline.case !== row.case || !BASELINES.includes(baseline.variant)) continue;
        for (const metric of metrics) {
          const ours = row.values[metric.key];
          const theirs = baseline.values[metric.key];
          if (ours == null || theirs == null || theirs === 0) continue;
          ratios.push({
            scenario: scenario.id,
            case: row.case,
            series: row.series,
            metric: metric.key,
            baseline: baseline.variant,
            value: round(ours / theirs, 3) ?? 0,
          });
        }
      }
    }
  }
  return ratios;
}

/** A ratio target of issue 6, checked against every matching ratio of the run. */
interface Target {
  readonly text: string;
  readonly scenario: ScenarioId;
  readonly metric: string;
  readonly baseline: Variant;
  readonly bound: number;
  readonly atMost: boolean;
  readonly series?: RegExp;
  readonly case?: RegExp;
}

const TARGETS: readonly Target[] = [
  {
    text: 'handshakes/s, opaque token and cached JWT ≥ 0.9 × raw ws',
    scenario: 'handshakes',
    metric: 'rate',
    baseline: 'raw-ws',
    bound: 0.9,
    atMost: false,
    series: /· (token|JWT)$/,
  },
  {
    text: 'handshakes/s, opaque token and cached JWT ≥ 1.8 × Socket.IO',
    scenario: 'handshakes',
    metric: 'rate',
    baseline: 'socketio',
    bound: 1.8,
    atMost: false,
    series: /· (token|JWT)$/,
  },
  {
    text: 'CPU per delivery in bursts ≤ 1.3 × raw ws coalesced',
    scenario: 'fanout',
    metric: 'cpuPerDelivery',
    baseline: 'raw-ws-coalesced',
    bound: 1.3,
    atMost: true,
    case: /bursts/,
  },
  {
    text: "CPU per delivery in bursts ≤ 0.2 × Socket.IO's",
    scenario: 'fanout',
    metric: 'cpuPerDelivery',
    baseline: 'socketio',
    bound: 0.2,
    atMost: true,
    case: /bursts/,
  },
  {
    text: 'CPU per delivery at one message per publish ≤ 1.0 × raw ws `send`',
    scenario: 'fanout',
    metric: 'cpuPerDelivery',
    baseline: 'raw-ws',
    bound: 1,
    atMost: true,
    case: /one message/,
  },
  {
    text: 'idle RSS per connection ≤ 1.2 × raw ws',
    scenario: 'memory',
    metric: 'rssPerConnection',
    baseline: 'raw-ws',
    bound: 1.2,
    atMost: true,
  },
  {
    text: 'idle heap per connection ≤ 1.2 × raw ws',
    scenario: 'memory',
    metric: 'heapPerConnection',
    baseline: 'raw-ws',
    bound: 1.2,
    atMost: true,
  },
];

function checkTargets(
  ratios: readonly Ratio[],
): { text: string; worst: number | null; met: boolean | null }[] {
  return TARGETS.map((target) => {
    const values = ratios
      .filter(
        (ratio) =>
          ratio.scenario === target.scenario &&
          ratio.metric === target.metric &&
          ratio.baseline === target.baseline &&
          (target.series === undefined || target.series.test(ratio.series)) &&
          (target.case === undefined || target.case.test(ratio.case)),
      )
      .map((ratio) => ratio.value);
    if (values.length === 0) return { text: target.text, worst: null, met: null };
    const worst = target.atMost ? Math.max(...values) : Math.min(...values);
    return {
      text: target.text,
      worst,
      met: target.atMost ? worst <= target.bound : worst >= target.bound,
    };
  });
}

/** A value for a table cell, in its metric's unit. */
export function formatValue(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined) return '—';
  switch (unit) {
    case '/s':
      return Math.round(value).toLocaleString('en');
    case 'B':
      return Math.abs(value) >= 1024
        ? `${(value / 1024).toFixed(1)} KiB`
        : `${Math.round(value)} B`;
    case 'µs':
    case 'ms':
      return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : Math.round(value).toLocaleString('en')} ${unit}`;
    default:
      return Math.round(value).toLocaleString('en');
  }
}

const COLORS: Readonly<Record<Variant, string>> = {
  portcullis: '#2563eb',
  'raw-ws': '#6b7280',
  'raw-ws-coalesced': '#a3a3a3',
  socketio: '#d97706',
};

const UNIT_WORDS: Readonly<Record<string, string>> = { '/s': 'per second', B: 'bytes' };

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** A horizontal grouped bar chart of one metric: a group per case, a bar per row. */
export function barChart(scenario: ScenarioResult, metric: Metric): string | undefined {
  const rows = scenario.rows.filter((row) => row.values[metric.key] != null);
  if (rows.length === 0) return undefined;
  const cases = [...new Set(rows.map((row) => row.case))];
  const max = Math.max(...rows.map((row) => row.values[metric.key] ?? 0), 0);
  const width = 820;
  const labelWidth = 230;
  const barArea = width - labelWidth - 110;
  const barHeight = 16;
  const gap = 4;
  const titleHeight = 48;
  const caseHeader = 22;
  const body: string[] = [];
  let y = titleHeight;
  for (const name of cases) {
    body.push(`<text x="8" y="${y + 15}" font-weight="bold">${escapeXml(name)}</text>`);
    y += caseHeader;
    for (const row of rows.filter((candidate) => candidate.case === name)) {
      const value = row.values[metric.key] ?? 0;
      const length = max > 0 ? Math.max(1, (value / max) * barArea) : 1;
      const incomplete = row.complete === false ? ' (incomplete)' : '';
      body.push(
        `<text x="${labelWidth - 8}" y="${y + 12}" text-anchor="end">${escapeXml(row.series)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${length.toFixed(1)}" height="${barHeight}" fill="${COLORS[row.variant]}"><title>${escapeXml(`${row.series}: ${formatValue(value, metric.unit)}`)}</title></rect>`,
        `<text x="${(labelWidth + length + 6).toFixed(1)}" y="${y + 12}">${escapeXml(formatValue(value, metric.unit) + incomplete)}</text>`,
      );
      y += barHeight + gap;
    }
    y += 8;
  }
  const height = y + 8;
  const better = metric.better === 'higher' ? 'higher is better' : 'lower is better';
  const unit = UNIT_WORDS[metric.unit] ?? metric.unit;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="8" y="20" font-size="15" font-weight="bold">${escapeXml(`${scenario.title}: ${metric.label}`)}</text>`,
    `<text x="8" y="38" fill="#555555">${escapeXml(`${unit === '' ? '' : `${unit}, `}${better}`)}</text>`,
    ...body,
    `</svg>`,
    '',
  ].join('\n');
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function scenarioTable(scenario: ScenarioResult): string {
  const metrics = scenario.metrics.filter((metric) =>
    scenario.rows.some((row) => row.values[metric.key] != null),
  );
  const hasComplete = scenario.rows.some((row) => row.complete !== undefined);
  const header = [
    'case',
    'server',
    ...metrics.map(
      (metric) =>
        `${metric.label}${metric.unit === '' || metric.unit === '/s' ? '' : ` (${metric.unit})`}`,
    ),
    ...(hasComplete ? ['complete'] : []),
  ];
  const rows = scenario.rows.map((row: Row) => [
    row.case,
    row.series,
    ...metrics.map((metric) =>
      formatValue(row.values[metric.key], metric.unit === '/s' ? '/s' : metric.unit).replace(
        / (µs|ms)$/,
        '',
      ),
    ),
    ...(hasComplete
      ? [
          row.complete === undefined
            ? ''
            : row.complete
              ? 'yes'
              : `**no**${row.note === undefined ? '' : ` (${row.note})`}`,
        ]
      : []),
  ]);
  return table(header, rows);
}

function ratioTable(scenario: ScenarioResult, ratios: readonly Ratio[]): string | undefined {
  const own = ratios.filter((ratio) => ratio.scenario === scenario.id);
  if (own.length === 0) return undefined;
  const baselines = BASELINES.filter((baseline) =>
    own.some((ratio) => ratio.baseline === baseline),
  );
  const keys = [
    ...new Set(own.map((ratio) => `${ratio.case}\u0000${ratio.series}\u0000${ratio.metric}`)),
  ];
  const rows = keys.map((key) => {
    const [name = '', series = '', metric = ''] = key.split('\u0000');
    const label = scenario.metrics.find((candidate) => candidate.key === metric)?.label ?? metric;
    return [
      name,
      series,
      label,
      ...baselines.map((baseline) => {
        const ratio = own.find(
          (candidate) =>
            candidate.case === name &&
            candidate.series === series &&
            candidate.metric === metric &&
            candidate.baseline === baseline,
        );
        return ratio === undefined ? '—' : `${ratio.value.toFixed(2)}×`;
      }),
    ];
  });
  return table(
    [
      'case',
      'Portcullis',
      'metric',
      ...baselines.map((baseline) => `÷ ${VARIANT_LABEL[baseline]}`),
    ],
    rows,
  );
}

const GIB = 1024 ** 3;

/** Writes `BENCHMARKS.md` at `root` and the charts under `bench/results/`. */
export async function writeReport(
  results: RunResults,
  resultsFile: string,
  root: string,
): Promise<string> {
  const chartDir = join(root, 'bench', 'results');
  await mkdir(chartDir, { recursive: true });
  const { machine } = results;
  const lines: string[] = [
    '# Benchmarks',
    '',
    `<!-- Generated by bench/report.ts from ${relative(root, resultsFile)}; edit the generator, not this file. -->`,
    '',
    `Portcullis (\`serve --bench\`, SPEC §9) against raw \`ws\` with no authentication (the practical ` +
      `limit for Node) and Socket.IO v4 with an equivalent token middleware and rooms, driven by the ` +
      `same load generator in the same run. Each server runs in its own process; CPU is that ` +
      `process's user + system time (\`process.cpuUsage()\`) over the measured interval.`,
    '',
    '## Machine and run',
    '',
    `- Date: ${results.startedAt} (${(results.durationMs / 60_000).toFixed(1)} min, ${results.mode} run)`,
    `- CPU: ${machine.cpuModel}, ${machine.cores} cores; memory ${(machine.memoryBytes / GIB).toFixed(1)} GiB`,
    `- Node ${machine.node} on ${machine.os}; open-file limit ${machine.openFileLimit} per process`,
    `- Load average (1/5/15 min): ${machine.loadAtStart.join(' / ')} at start, ${results.loadAtEnd.join(' / ')} at end`,
    `- Commit ${machine.commit}${machine.dirty ? ' with uncommitted changes' : ''}` +
      (results.distStale ? ' (**dist/ was older than src/: Portcullis ran an older build**)' : ''),
    `- Results: [\`${relative(root, resultsFile)}\`](${relative(root, resultsFile)})`,
    '',
    '## How to run',
    '',
    '```sh',
    'npm run bench          # builds dist/, then the full run (minutes): bench/results/<date>.json + this page',
    'npm run bench:smoke    # a few hundred connections per scenario, under a minute (build first)',
    '# one part, some servers:',
    'node --import tsx bench/run.ts --only fanout,echo --servers portcullis,raw-ws',
    '# this page again from a results file:',
    'node --import tsx bench/report.ts bench/results/<date>.json',
    '```',
    '',
    `This run: \`${results.command}\`.`,
    '',
    'Absolute numbers on a shared machine drift by tens of percent from run to run; CPU per ' +
      'operation and the ratios Portcullis ÷ baseline, both taken inside one run, are the figures ' +
      'to compare across runs. Ratios of rates: above 1 is better; of CPU, memory and latency: ' +
      'below 1 is better. Timing is never asserted in tests.',
    '',
  ];

  const checks = checkTargets(results.ratios);
  lines.push(
    '## Targets (issue 6)',
    '',
    table(
      ['target', 'worst ratio in this run', 'met'],
      checks.map((check) => [
        check.text,
        check.worst === null ? '—' : `${check.worst.toFixed(2)}×`,
        check.met === null ? 'not measured' : check.met ? 'yes' : '**no**',
      ]),
    ),
    '',
    'Where a target is missed, [docs/performance.md](docs/performance.md) has the profile that',
    'explains the gap and what was changed because of it.',
    '',
  );

  for (const scenario of results.scenarios) {
    lines.push(`## ${scenario.title}`, '', scenario.description, '');
    for (const skip of scenario.skipped) {
      lines.push(
        `- skipped${skip.variant === null ? '' : ` (${VARIANT_LABEL[skip.variant]})`}: ${skip.reason}`,
      );
    }
    if (scenario.skipped.length > 0) lines.push('');
    if (scenario.rows.length === 0) continue;
    lines.push(scenarioTable(scenario), '');
    const ratios = ratioTable(scenario, results.ratios);
    if (ratios !== undefined) lines.push('Portcullis ÷ baseline, same run:', '', ratios, '');
    for (const metric of scenario.metrics.filter((candidate) => candidate.chart === true)) {
      const svg = barChart(scenario, metric);
      if (svg === undefined) continue;
      const file = join(chartDir, `${scenario.id}-${metric.key}.svg`);
      writeFileSync(file, svg);
      lines.push(`![${scenario.title}: ${metric.label}](${relative(root, file)})`, '');
    }
  }
  const page = join(root, 'BENCHMARKS.md');
  writeFileSync(page, `${lines.join('\n').trimEnd()}\n`);
  return page;
}

// `node --import tsx bench/report.ts FILE.json` regenerates the page from a results file.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (file === undefined) {
    process.stderr.write('usage: node --import tsx bench/report.ts bench/results/<date>.json\n');
    process.exit(2);
  }
  const results = JSON.parse(readFileSync(file, 'utf8')) as RunResults;
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const page = await writeReport(results, file, root);
  process.stdout.write(`${relative(process.cwd(), page)}\n`);
}
