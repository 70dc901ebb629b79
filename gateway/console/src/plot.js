// A small line plot in an <svg>: one polyline per series, y from 0 to a bit above the
// largest value (a limit shows as a dashed line when it is in range), x over the samples
// kept. No chart library.
const NS = 'http://www.w3.org/2000/svg';
const W = 640, H = 200, PAD = 34;

function node(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// series: [{name, points: [{t, v}], limit}]
export function drawPlot(svg, series) {
  const all = series.flatMap((s) => s.points);
  const top = Math.ceil(Math.max(8, ...all.map((p) => p.v)) * 1.25);
  const limits = series.map((s) => s.limit || 0);
  const ymax = Math.max(top, ...limits.filter((l) => l <= top * 1.5));
  const t0 = Math.min(...all.map((p) => p.t)), t1 = Math.max(...all.map((p) => p.t));
  const span = Math.max(1, t1 - t0);
  const x = (t) => PAD + ((t - t0) / span) * (W - PAD - 8);
  const y = (v) => H - 18 - (v / ymax) * (H - 30);
  const kids = [
    node('line', { x1: PAD, y1: y(0), x2: W - 8, y2: y(0), class: 'axis' }),
    node('line', { x1: PAD, y1: y(ymax), x2: W - 8, y2: y(ymax), class: 'grid' }),
    node('text', { x: PAD - 4, y: y(ymax) + 4, class: 'tick', 'text-anchor': 'end' }, short(ymax)),
    node('text', { x: PAD - 4, y: y(0) + 4, class: 'tick', 'text-anchor': 'end' }, '0'),
  ];
  if (all.length) {
    kids.push(node('text', { x: W - 8, y: H - 2, class: 'tick', 'text-anchor': 'end' },
      `${Math.round(span / 1000)} s of samples`));
  }
  series.forEach((s, i) => {
    if (s.limit && s.limit <= ymax) kids.push(node('line', { x1: PAD, y1: y(s.limit), x2: W - 8, y2: y(s.limit), class: `limit series-${i % 6}` }));
    if (!s.points.length) return;
    const pts = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
    kids.push(node('polyline', { points: pts, class: `line series-${i % 6}` }));
  });
  svg.replaceChildren(...kids);
}

export function short(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  return String(n);
}
