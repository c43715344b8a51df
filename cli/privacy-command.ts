// `dpfed privacy epsilon|calibrate`: the privacy accountant and noise calibration from the command line.
// The JSON shapes are a contract (researchers and acceptance checks read them); keep them stable.
import { CommandSpec, renderHelp, runCommand, UsageError, type FlagValues } from '@dpfed/proto/command-flags';
import { makeAccountant, type AccountantKind } from '@dpfed/privacy/accountant';
import { validateMechanismEvent, type MechanismEvent } from '@dpfed/privacy/mechanism-event';
import { calibrateNoiseMultiplier } from '@dpfed/privacy/calibrate';

/** Parses "Q:SIGMA:STEPS"; throws an Error naming the bad part. */
export function parseEventArgument(text: string): MechanismEvent {
  const parts = text.split(':');
  if (parts.length !== 3 || parts.some((p) => p.trim() === '')) {
    throw new Error(`expected Q:SIGMA:STEPS (e.g. 0.01:1.1:1000), got "${text}"`);
  }
  const [sampleRate, noiseMultiplier, steps] = parts.map(Number);
  if (Number.isNaN(sampleRate) || !(sampleRate > 0 && sampleRate <= 1)) throw new Error(`sample rate Q must be in (0, 1], got "${parts[0]}" in "${text}"`);
  if (!Number.isFinite(noiseMultiplier) || noiseMultiplier <= 0) throw new Error(`noise multiplier SIGMA must be a finite number > 0, got "${parts[1]}" in "${text}"`);
  if (!Number.isSafeInteger(steps) || steps < 1) throw new Error(`STEPS must be a positive integer, got "${parts[2]}" in "${text}"`);
  const event = { sampleRate, noiseMultiplier, steps };
  validateMechanismEvent(event);
  return event;
}

const checkMessage = (f: () => unknown) => {
  try {
    f();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
};

const deltaFlag = {
  name: 'delta',
  type: 'number' as const,
  help: 'target delta, in (0, 1)',
  required: true,
  check: (v: number | string) => (Number(v) > 0 && Number(v) < 1 ? undefined : `must be in (0, 1), got ${v}`),
};
const accountantFlag = { name: 'accountant', type: 'string' as const, help: 'rdp (Rényi DP) or pld (privacy loss distribution, tighter)', choices: ['rdp', 'pld'] as const, default: 'rdp' };
const jsonFlag = { name: 'json', type: 'boolean' as const, help: 'print one JSON object instead of a readable line' };

export const EPSILON_COMMAND: CommandSpec = {
  name: 'privacy epsilon',
  summary: 'epsilon of a history of Poisson-subsampled Gaussian events, composed (never summed)',
  usage: 'dpfed privacy epsilon --event Q:SIGMA:STEPS [--event Q:SIGMA:STEPS …] --delta D [--accountant rdp|pld] [--json]',
  flags: [
    {
      name: 'event',
      type: 'list',
      help: 'a mechanism event: sampling rate q in (0,1], noise multiplier sigma > 0, steps (positive integer)',
      required: true,
      check: (v) => checkMessage(() => parseEventArgument(String(v))),
    },
    deltaFlag,
    accountantFlag,
    jsonFlag,
  ],
  examples: ['dpfed privacy epsilon --event 0.01:1.0:1000 --delta 1e-5 --json', 'dpfed privacy epsilon --event 0.01:1.1:500 --event 0.02:0.9:200 --delta 1e-5'],
};

export const CALIBRATE_COMMAND: CommandSpec = {
  name: 'privacy calibrate',
  summary: 'the noise multiplier that reaches a target (epsilon, delta) for a sampling rate and step count',
  usage: 'dpfed privacy calibrate --epsilon E --delta D --sample-rate Q --steps T [--accountant rdp|pld] [--json]',
  flags: [
    { name: 'epsilon', type: 'number', help: 'target epsilon, > 0', required: true, check: (v) => (Number(v) > 0 ? undefined : `must be > 0, got ${v}`) },
    deltaFlag,
    {
      name: 'sample-rate',
      type: 'number',
      help: 'Poisson sampling rate q, in (0, 1]',
      required: true,
      check: (v) => (Number(v) > 0 && Number(v) <= 1 ? undefined : `must be in (0, 1], got ${v}`),
    },
    { name: 'steps', type: 'int', help: 'number of steps (positive integer)', required: true, check: (v) => (Number(v) >= 1 ? undefined : `must be a positive integer, got ${v}`) },
    { name: 'tolerance', type: 'number', help: 'the returned epsilon lies in [target - tolerance, target]', default: 0.01, check: (v) => (Number(v) > 0 ? undefined : `must be > 0, got ${v}`) },
    accountantFlag,
    jsonFlag,
  ],
  examples: ['dpfed privacy calibrate --epsilon 8 --delta 1e-5 --sample-rate 0.04 --steps 2250 --json'],
};

function overview(): string {
  return [
    'dpfed privacy: privacy accounting for the Poisson-subsampled Gaussian mechanism',
    '',
    'Usage: dpfed privacy epsilon [flags]      dpfed privacy calibrate [flags]',
    '',
    'Subcommands:',
    `  epsilon     ${EPSILON_COMMAND.summary}`,
    `  calibrate   ${CALIBRATE_COMMAND.summary}`,
    '',
    renderHelp(EPSILON_COMMAND),
    renderHelp(CALIBRATE_COMMAND),
  ].join('\n');
}

function format(x: number): string {
  return Number.isFinite(x) ? Number(x.toPrecision(6)).toString() : String(x);
}

async function epsilonBody(flags: FlagValues): Promise<number> {
  const events = (flags.event as string[]).map(parseEventArgument);
  const delta = flags.delta as number;
  const kind = flags.accountant as AccountantKind;
  const result = makeAccountant(kind).epsilon(events, delta);
  if (!Number.isFinite(result.epsilon)) throw new UsageError(`--event: epsilon is unbounded for these events (noise multiplier too small)`);
  if (flags.json) {
    const out: Record<string, unknown> = { epsilon: result.epsilon, delta, accountant: kind };
    if (result.order !== undefined) out.order = result.order;
    if (result.method !== undefined) out.method = result.method;
    out.events = events;
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else {
    const order = (result.method === 'rdp' ? ', the RDP bound was smaller' : '') + (result.order !== undefined ? `, best order ${result.order}` : '');
    process.stdout.write(`epsilon = ${format(result.epsilon)} at delta = ${delta} (${kind} accountant${order}) for ${events.length} event(s), ${events.reduce((n, e) => n + e.steps, 0)} steps\n`);
  }
  return 0;
}

async function calibrateBody(flags: FlagValues): Promise<number> {
  const request = {
    targetEpsilon: flags.epsilon as number,
    delta: flags.delta as number,
    sampleRate: flags.sampleRate as number,
    steps: flags.steps as number,
    accountant: flags.accountant as AccountantKind,
    tolerance: flags.tolerance as number,
  };
  let result: { noiseMultiplier: number; epsilon: number };
  try {
    result = calibrateNoiseMultiplier(request);
  } catch (error) {
    const message = (error as Error).message;
    if (/unreachable|not reached/.test(message)) throw new UsageError(`--epsilon: ${message.replace(/^calibrate: /, '')}`);
    throw error;
  }
  if (flags.json) {
    process.stdout.write(
      `${JSON.stringify({
        noiseMultiplier: result.noiseMultiplier,
        epsilon: result.epsilon,
        delta: request.delta,
        targetEpsilon: request.targetEpsilon,
        sampleRate: request.sampleRate,
        steps: request.steps,
        accountant: request.accountant,
      })}\n`,
    );
  } else {
    process.stdout.write(
      `noise multiplier ${format(result.noiseMultiplier)} gives epsilon = ${format(result.epsilon)} (target ${request.targetEpsilon}) at delta = ${request.delta} for ${request.steps} steps at sampling rate ${request.sampleRate} (${request.accountant} accountant)\n`,
    );
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(overview());
    return 0;
  }
  if (sub === 'epsilon') return runCommand(EPSILON_COMMAND, rest, epsilonBody);
  if (sub === 'calibrate') return runCommand(CALIBRATE_COMMAND, rest, calibrateBody);
  process.stderr.write(`dpfed privacy: unknown subcommand "${sub}" (expected epsilon or calibrate; see dpfed privacy --help)\n`);
  return 2;
}
