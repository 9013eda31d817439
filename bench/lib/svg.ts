/** A small dual-axis line chart as standalone SVG (no dependencies). */

export interface Series {
  name: string;
  values: (number | null)[];
  color: string;
  dashed?: boolean;
}

export interface Axis {
  label: string;
  max: number;
  series: Series[];
  /** Optional horizontal reference line on this axis. */
  reference?: { value: number; label: string };
}

export interface Chart {
  title: string;
  x: { label: string; values: number[] };
  left: Axis;
  right?: Axis;
  /** Optional vertical marker at an x value. */
  marker?: { x: number; label: string };
}

const W = 720;
const H = 400;
const M = { top: 48, right: 72, bottom: 56, left: 64 };

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function fmt(value: number): string {
  if (value === 0) return "0";
  if (Math.abs(value) >= 100) return String(Math.round(value));
  if (Math.abs(value) >= 1) return String(Math.round(value * 10) / 10);
  return String(Math.round(value * 1000) / 1000);
}

export function lineChart(chart: Chart): string {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const xs = chart.x.values;
  const xMax = niceMax(Math.max(...xs));
  const sx = (x: number) => M.left + (x / xMax) * plotW;
  const axisScale = (axis: Axis) => {
    const max = niceMax(axis.max);
    return { max, y: (v: number) => M.top + plotH - (Math.min(v, max) / max) * plotH };
  };
  const left = axisScale(chart.left);
  const right = chart.right ? axisScale(chart.right) : undefined;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<title>${esc(chart.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(chart.title)}</text>`,
  );
  // Grid and axes.
  for (let i = 0; i <= 5; i++) {
    const y = M.top + (plotH * i) / 5;
    out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + plotW}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(
      `<text x="${M.left - 8}" y="${y + 4}" text-anchor="end" fill="#333">${fmt(left.max * (1 - i / 5))}</text>`,
    );
    if (right) {
      out.push(
        `<text x="${M.left + plotW + 8}" y="${y + 4}" text-anchor="start" fill="#333">${fmt(right.max * (1 - i / 5))}</text>`,
      );
    }
  }
  for (let i = 0; i <= 5; i++) {
    const x = M.left + (plotW * i) / 5;
    out.push(`<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + plotH}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x}" y="${M.top + plotH + 18}" text-anchor="middle" fill="#333">${fmt((xMax * i) / 5)}</text>`);
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`,
    `<text x="${M.left + plotW / 2}" y="${H - 14}" text-anchor="middle">${esc(chart.x.label)}</text>`,
    `<text transform="translate(18 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(chart.left.label)}</text>`,
  );
  if (chart.right) {
    out.push(
      `<text transform="translate(${W - 16} ${M.top + plotH / 2}) rotate(90)" text-anchor="middle">${esc(chart.right.label)}</text>`,
    );
  }
  const reference = (axis: Axis, scale: { y: (v: number) => number }) => {
    if (!axis.reference) return;
    const y = scale.y(axis.reference.value);
    out.push(
      `<line x1="${M.left}" y1="${y}" x2="${M.left + plotW}" y2="${y}" stroke="#888" stroke-dasharray="2 3"/>`,
      `<text x="${M.left + plotW - 4}" y="${y + 14}" text-anchor="end" fill="#666">${esc(axis.reference.label)}</text>`,
    );
  };
  reference(chart.left, left);
  if (chart.right && right) reference(chart.right, right);
  if (chart.marker) {
    const x = sx(chart.marker.x);
    out.push(
      `<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + plotH}" stroke="#2a9d4b" stroke-dasharray="5 4"/>`,
      `<text x="${x + 4}" y="${M.top + plotH - 8}" fill="#2a9d4b">${esc(chart.marker.label)}</text>`,
    );
  }
  // Series.
  const draw = (series: Series, scale: { y: (v: number) => number }) => {
    const points = series.values
      .map((v, i) => (v === null || !Number.isFinite(v) ? null : `${sx(xs[i]!).toFixed(1)},${scale.y(v).toFixed(1)}`))
      .filter((p): p is string => p !== null);
    if (points.length === 0) return;
    out.push(
      `<polyline points="${points.join(" ")}" fill="none" stroke="${series.color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    for (const p of points) {
      const [x, y] = p.split(",");
      out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${series.color}"/>`);
    }
  };
  for (const s of chart.left.series) draw(s, left);
  if (chart.right && right) for (const s of chart.right.series) draw(s, right);
  // Legend.
  const all = [
    ...chart.left.series.map((s) => ({ ...s, axis: "left" })),
    ...(chart.right?.series ?? []).map((s) => ({ ...s, axis: "right" })),
  ];
  all.forEach((s, i) => {
    const x = M.left + 10;
    const y = M.top + 14 + i * 16;
    out.push(
      `<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${x + 28}" y="${y}" fill="#222">${esc(`${s.name} (${s.axis} axis)`)}</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
