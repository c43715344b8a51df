// Accountant speed figures for `npm run bench`: epsilon of one event of 1e5 steps (goal <= 50 ms) with a
// fresh accountant (no cached RDP curve), and one full calibration (the Opacus reference case; each
// repetition at a sample rate a millionth apart, so neither the calibration memo nor the shared RDP curves
// answer it).
import { RdpAccountant } from '@dpfed/privacy/rdp-accountant';
import { calibrateNoiseMultiplier } from '@dpfed/privacy/calibrate';
import { median } from './statistics.ts';

export async function benchAccountant(): Promise<{ accountantMs1e5Steps: number; calibrateMs: number }> {
  const epsilonTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const accountant = new RdpAccountant();
    const start = performance.now();
    accountant.epsilon([{ sampleRate: 0.01 + i * 1e-6, noiseMultiplier: 1.0, steps: 100_000 }], 1e-5);
    epsilonTimes.push(performance.now() - start);
  }
  const calibrateTimes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    calibrateNoiseMultiplier({ targetEpsilon: 8, delta: 1e-5, sampleRate: 0.04 + i * 1e-6, steps: 2250 });
    calibrateTimes.push(performance.now() - start);
  }
  return { accountantMs1e5Steps: median(epsilonTimes), calibrateMs: median(calibrateTimes) };
}
