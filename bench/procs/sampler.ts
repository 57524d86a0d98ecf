// Reads a process's resident memory and open file descriptors from /proc (Linux), and samples
// them on a timer so a phase can report the peak, not just the value at its end.
import fs from 'node:fs';

export interface ProcessSample {
  rssBytes: number;
  openFds: number;
}

/** The process's current RSS and open fds, or undefined where /proc is not available. */
export function sampleProcess(pid: number): ProcessSample | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
    return { rssBytes: rssKb * 1024, openFds: fs.readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined;
  }
}

export interface SampleSeries {
  first?: ProcessSample;
  last?: ProcessSample;
  peakRssBytes: number;
  peakFds: number;
  count: number;
}

export interface Sampler {
  /** Stops sampling and returns what was seen, one last sample included. */
  stop(): SampleSeries;
  /** What has been seen so far. */
  readonly series: SampleSeries;
}

export function startSampler(pid: number | undefined, everyMs: number): Sampler {
  const series: SampleSeries = { peakRssBytes: 0, peakFds: 0, count: 0 };
  const take = () => {
    const sample = pid === undefined ? undefined : sampleProcess(pid);
    if (!sample) return;
    series.first ??= sample;
    series.last = sample;
    series.peakRssBytes = Math.max(series.peakRssBytes, sample.rssBytes);
    series.peakFds = Math.max(series.peakFds, sample.openFds);
    series.count++;
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    series,
    stop() {
      clearInterval(timer);
      take();
      return series;
    },
  };
}
