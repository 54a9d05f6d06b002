/**
 * A uPlot time chart: `series` share the time axis `x` (seconds); each is a
 * line (or points only, `points: true`). Redrawn in place when data changes.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Series {
  label: string;
  stroke: string;
  values: Array<number | null>;
  points?: boolean;
  /** Draw on the right-hand axis (e.g. load beside replica counts). */
  right?: boolean;
}

export function TimeChart(props: { x: number[]; series: Series[]; height?: number; testid?: string }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const data = [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData;
  useEffect(() => {
    if (!el.current) return undefined;
    const opts: uPlot.Options = {
      width: Math.max(320, el.current.clientWidth || 800),
      height: props.height ?? 260,
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max + 1)] }, load: { range: (_u, _min, max) => [0, Math.max(1, max * 1.2)] } },
      axes: [{}, { label: 'replicas', scale: 'y' }, { label: 'load', scale: 'load', side: 1, grid: { show: false } }],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          scale: s.right ? 'load' : 'y',
          width: s.points ? 0 : 2,
          paths: s.points ? () => null : undefined,
          points: s.points ? { show: true, size: 9, fill: s.stroke } : { show: false },
          spanGaps: true,
        })),
      ],
    };
    plot.current = new uPlot(opts, data, el.current);
    return () => {
      plot.current?.destroy();
      plot.current = undefined;
    };
  }, [props.series.length]);
  useEffect(() => {
    plot.current?.setData(data);
  });
  return <div ref={el} class="chart" data-testid={props.testid} data-points={props.x.length} />;
}
