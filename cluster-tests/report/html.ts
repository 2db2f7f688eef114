/**
 * The self-contained HTML report: one file, inline CSS, SVG and a little JS, no network.
 *
 * - the verdict table and every anomaly with its counterexample;
 * - a timeline: one row per client process (each operation a bar from invoke to completion,
 *   coloured by outcome), one row per watch stream (a tick per response), fault windows shaded
 *   from the nemesis events, and the operations and responses of violations outlined in red.
 *   Clicking an anomaly highlights just its operations.
 *
 * Large histories are cut to a window of at most MAX_TIMELINE_OPS operations, centred on the first
 * violation (or the start of the run), and the report says so.
 */
import { type History, type Indexed, type NemesisEvent, type Operation, type PairedOp, pairOperations, timeSpanNs } from '../history';
import type { Verdict } from '../checkers/verdict';

/** The timeline draws at most this many operations (SVG with more gets slow to open). */
export const MAX_TIMELINE_OPS = 4_000;
/** At most this many watch responses are drawn. */
export const MAX_TIMELINE_RESPONSES = 6_000;

const ROW_PX = 16;
const LABEL_PX = 90;
const BASE_WIDTH_PX = 1400;

export interface ReportOptions {
  readonly title?: string;
  /** Free text shown under the title (the command line, the seed, the build). */
  readonly subtitle?: string;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** JSON safe inside a <script> element. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

interface FaultWindow {
  readonly fault: string;
  readonly startNs: number;
  readonly endNs: number;
  readonly detail: string;
}

/** Pair nemesis start/stop by fault name; a window never stopped lasts to the end of the history. */
export function faultWindows(history: History): FaultWindow[] {
  const open = new Map<string, Indexed<NemesisEvent>[]>();
  const out: FaultWindow[] = [];
  const { endNs } = timeSpanNs(history);
  for (const e of history) {
    if (e.kind !== 'nemesis') continue;
    const stack = open.get(e.fault) ?? open.set(e.fault, []).get(e.fault)!;
    if (e.phase === 'start') stack.push(e);
    else {
      const s = stack.shift();
      if (s !== undefined) out.push({ fault: e.fault, startNs: s.timeNs, endNs: e.timeNs, detail: [s.targets?.join(','), s.detail].filter(Boolean).join(' ') });
    }
  }
  for (const stack of open.values()) for (const s of stack) out.push({ fault: s.fault, startNs: s.timeNs, endNs, detail: 'never stopped' });
  return out;
}

function describeOp(op: PairedOp): string {
  const inv = op.invoke as Operation;
  const c = op.complete as Operation | undefined;
  const parts: string[] = [`#${op.id} p${op.process} ${inv.f} ${op.outcome}`];
  switch (inv.f) {
    case 'read':
      parts.push(inv.key, '→', c !== undefined && c.f === 'read' ? JSON.stringify(c.value ?? null) : '?');
      break;
    case 'write':
      parts.push(inv.key, inv.value === null ? '(delete)' : `= ${JSON.stringify(inv.value)}`);
      break;
    case 'cas':
      parts.push(inv.key, `if ${JSON.stringify(inv.expected)} then ${JSON.stringify(inv.value)}`);
      if (c !== undefined && c.f === 'cas' && c.observed !== undefined) parts.push(`else read ${JSON.stringify(c.observed)}`);
      break;
    case 'txn':
      parts.push(JSON.stringify(c !== undefined && c.f === 'txn' ? c.value : inv.value));
      break;
    case 'list':
      parts.push(inv.key, c !== undefined && c.f === 'list' ? `${c.value?.length ?? 0} kvs` : '');
      break;
    case 'compact':
      parts.push(`to ${inv.atRevision}`);
      break;
    case 'lock-acquire':
    case 'lock-release':
      parts.push(inv.lockName);
      break;
    case 'final-read':
      break;
  }
  if (c?.revision !== undefined) parts.push(`rev ${c.revision}`);
  if (c?.error !== undefined) parts.push(`(${c.error})`);
  return parts.join(' ');
}

/** Pick the time window to draw: everything if small, else MAX_TIMELINE_OPS ops around the first violation. */
function chooseWindow(ops: readonly PairedOp[], focusIds: ReadonlySet<number>, centreId: number | undefined): { ops: PairedOp[]; cut: boolean } {
  if (ops.length <= MAX_TIMELINE_OPS) return { ops: ops.slice(), cut: false };
  const byTime = ops.slice().sort((a, b) => a.invokeNs - b.invokeNs);
  let centre = byTime.findIndex((o) => o.id === centreId);
  if (centre < 0) centre = 0;
  const from = Math.max(0, Math.min(centre - MAX_TIMELINE_OPS / 2, byTime.length - MAX_TIMELINE_OPS));
  const chosen = byTime.slice(from, from + MAX_TIMELINE_OPS);
  // Always include the violating operations themselves.
  const have = new Set(chosen.map((o) => o.id));
  for (const o of ops) if (focusIds.has(o.id) && !have.has(o.id)) chosen.push(o);
  return { ops: chosen, cut: true };
}

export function renderHtmlReport(history: History, verdicts: readonly Verdict[], opts: ReportOptions = {}): string {
  const allOps = pairOperations(history);
  const focusOps = new Set<number>();
  const focusResponses = new Set<number>();
  verdicts.forEach((v) => {
    for (const a of v.anomalies) {
      a.ops.forEach((id) => focusOps.add(id));
      a.watches?.forEach((w) => focusResponses.add(w.entryIndex));
    }
  });
  // Centre on the main operation of the first violation (anomalies list it first).
  const centreId = verdicts.flatMap((v) => v.anomalies).find((a) => a.ops.length > 0)?.ops[0];
  const { ops, cut } = chooseWindow(allOps, focusOps, centreId);
  const span = timeSpanNs(history);
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const o of ops) {
    t0 = Math.min(t0, o.invokeNs);
    t1 = Math.max(t1, o.complete?.timeNs ?? o.invokeNs);
  }
  if (!cut) {
    t0 = Math.min(t0, span.startNs);
    t1 = Math.max(t1, span.endNs);
  }
  if (!Number.isFinite(t0)) {
    t0 = span.startNs;
    t1 = span.endNs;
  }
  if (t1 <= t0) t1 = t0 + 1;
  const x = (ns: number): number => LABEL_PX + ((Math.min(Math.max(ns, t0), t1) - t0) / (t1 - t0)) * BASE_WIDTH_PX;

  // Rows: client processes in order of first appearance, then watch streams.
  const rows = new Map<string, number>();
  for (const o of ops.slice().sort((a, b) => a.invokeNs - b.invokeNs)) if (!rows.has(`p${o.process}`)) rows.set(`p${o.process}`, rows.size);
  const responses = history.filter((e) => e.kind === 'watch-response' && e.timeNs >= t0 && e.timeNs <= t1).slice(0, MAX_TIMELINE_RESPONSES);
  for (const e of history) if (e.kind === 'watch-open' && !rows.has(`w:${e.watcher}`)) rows.set(`w:${e.watcher}`, rows.size);
  const heightPx = 30 + rows.size * ROW_PX;

  const svg: string[] = [];
  svg.push(`<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="${LABEL_PX + BASE_WIDTH_PX + 20}" height="${heightPx}" viewBox="0 0 ${LABEL_PX + BASE_WIDTH_PX + 20} ${heightPx}" preserveAspectRatio="none">`);
  for (const w of faultWindows(history)) {
    if (w.endNs < t0 || w.startNs > t1) continue;
    const a = x(w.startNs);
    const b = Math.max(x(w.endNs), a + 2);
    svg.push(`<rect class="fault" x="${a.toFixed(1)}" y="0" width="${(b - a).toFixed(1)}" height="${heightPx}"><title>${esc(`${w.fault} ${w.detail}`)}</title></rect>`);
    svg.push(`<text class="faultlabel" x="${(a + 2).toFixed(1)}" y="10">${esc(w.fault)}</text>`);
  }
  // Time axis: ticks in ms.
  for (let i = 0; i <= 10; i++) {
    const ns = t0 + ((t1 - t0) * i) / 10;
    const px = x(ns);
    svg.push(`<line class="tick" x1="${px.toFixed(1)}" y1="14" x2="${px.toFixed(1)}" y2="${heightPx}"/><text class="axis" x="${(px + 2).toFixed(1)}" y="24">${(ns / 1e6).toFixed(1)} ms</text>`);
  }
  for (const [name, row] of rows) {
    const y = 30 + row * ROW_PX;
    svg.push(`<text class="rowlabel" x="2" y="${y + 11}">${esc(name.startsWith('w:') ? `watch ${name.slice(2)}` : name)}</text>`);
  }
  for (const o of ops) {
    const y = 30 + rows.get(`p${o.process}`)! * ROW_PX + 2;
    const a = x(o.invokeNs);
    const endNs = o.complete?.timeNs ?? t1;
    const b = Math.max(x(endNs), a + 2);
    const cls = `op ${o.outcome}${focusOps.has(o.id) ? ' bad' : ''}`;
    svg.push(`<rect id="op${o.id}" class="${cls}" data-op="${o.id}" x="${a.toFixed(1)}" y="${y}" width="${(b - a).toFixed(1)}" height="${ROW_PX - 4}"><title>${esc(describeOp(o))}</title></rect>`);
    if (o.outcome === 'info') svg.push(`<rect class="infotail" x="${b.toFixed(1)}" y="${y + 4}" width="${Math.max(0, x(t1) - b).toFixed(1)}" height="${ROW_PX - 12}"/>`);
  }
  for (const r of responses) {
    if (r.kind !== 'watch-response') continue;
    const row = rows.get(`w:${r.watcher}`);
    if (row === undefined) continue;
    const y = 30 + row * ROW_PX + 2;
    const px = x(r.timeNs);
    const cls = `resp${r.progressNotify === true ? ' progress' : ''}${r.canceled === true ? ' canceled' : ''}${focusResponses.has(r.index) ? ' bad' : ''}`;
    const revs = r.events.map((e) => `${e.type} ${e.key}@${e.modRevision}`).join(', ');
    const label = r.progressNotify === true ? `progress @${r.revision}` : r.canceled === true ? `canceled (compact ${r.compactRevision ?? 0})` : revs || `header @${r.revision}`;
    svg.push(`<rect id="resp${r.index}" class="${cls}" x="${(px - 1.5).toFixed(1)}" y="${y}" width="3" height="${ROW_PX - 4}"><title>${esc(`entry ${r.index}: ${label}`)}</title></rect>`);
  }
  svg.push('</svg>');

  const overall = verdicts.some((v) => v.status === 'fail') ? 'fail' : verdicts.some((v) => v.status === 'unknown') ? 'unknown' : 'pass';
  const verdictRows = verdicts
    .map((v) => `<tr><td>${esc(v.checker)}</td><td class="st ${v.status}">${v.status.toUpperCase()}</td><td>${v.durationMs.toFixed(0)} ms</td><td>${esc(v.summary)}</td></tr>`)
    .join('\n');
  const anomalyBlocks: string[] = [];
  verdicts.forEach((v, vi) => {
    v.anomalies.forEach((a, ai) => {
      const id = `a${vi}_${ai}`;
      anomalyBlocks.push(
        `<div class="anomaly ${v.status}" id="${id}" data-ops="${a.ops.join(',')}" data-resps="${(a.watches ?? []).map((w) => w.entryIndex).join(',')}">` +
          `<div><b>${esc(v.checker)}</b> <span class="atype">${esc(a.type)}</span> ${esc(a.message)}</div>` +
          (a.ops.length > 0 ? `<div class="opsline">ops: ${a.ops.map((o) => `<a href="#timeline" data-op="${o}">#${o}</a>`).join(' ')}</div>` : '') +
          (a.evidence !== undefined ? `<details><summary>counterexample</summary><pre>${esc(JSON.stringify(a.evidence, null, 2))}</pre></details>` : '') +
          `</div>`,
      );
    });
  });
  const opCount = allOps.length;
  const title = opts.title ?? 'cairn cluster-tests report';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px;margin:0 0 4px} .sub{color:#666;margin-bottom:12px}
.overall{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:bold}
.overall.pass{background:#2e7d32}.overall.fail{background:#c62828}.overall.unknown{background:#ef6c00}
table{border-collapse:collapse;margin:10px 0} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
.st.pass{color:#2e7d32;font-weight:bold}.st.fail{color:#c62828;font-weight:bold}.st.unknown{color:#ef6c00;font-weight:bold}.st.warn{color:#b28704;font-weight:bold}
.anomaly{border-left:4px solid #c62828;background:#fff5f5;padding:4px 8px;margin:6px 0;cursor:pointer}
.anomaly.warn{border-color:#b28704;background:#fffbea} .anomaly.sel{outline:2px solid #1565c0}
.atype{font-family:monospace;background:#eee;padding:0 4px;border-radius:3px}
.opsline a{font-family:monospace;margin-right:4px}
pre{background:#f6f6f6;padding:6px;overflow:auto;max-height:300px}
#tlwrap{overflow:auto;border:1px solid #ccc;max-height:70vh}
.fault{fill:#ffcc80;opacity:.35}.faultlabel{font-size:9px;fill:#a15c00}
.tick{stroke:#eee}.axis{font-size:9px;fill:#888}.rowlabel{font-size:10px;fill:#444;font-family:monospace}
.op.ok{fill:#81c784}.op.fail{fill:#e0e0e0;stroke:#999;stroke-width:.5}.op.info{fill:#ffb74d}
.infotail{fill:#ffb74d;opacity:.25}
.resp{fill:#64b5f6}.resp.progress{fill:#9575cd}.resp.canceled{fill:#000}
.bad{stroke:#d50000;stroke-width:2.5}.dim .op:not(.hl),.dim .resp:not(.hl){opacity:.15}.hl{stroke:#d50000;stroke-width:3}
.legend span{display:inline-block;margin-right:12px}.sw{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}
#detail{position:sticky;bottom:0;background:#263238;color:#fff;padding:4px 8px;font-family:monospace;min-height:1.4em}
</style></head><body>
<h1>${esc(title)} <span class="overall ${overall}">${overall.toUpperCase()}</span></h1>
<div class="sub">${esc(opts.subtitle ?? '')} ${history.length} history entries, ${opCount} operations, ${(span.endNs - span.startNs) / 1e6} ms</div>
<table><tr><th>checker</th><th>status</th><th>time</th><th>summary</th></tr>
${verdictRows}
</table>
<h2>Violations</h2>
${anomalyBlocks.length === 0 ? '<p>None.</p>' : anomalyBlocks.join('\n')}
<h2>Timeline</h2>
<div class="legend"><span><i class="sw" style="background:#81c784"></i>ok</span><span><i class="sw" style="background:#e0e0e0"></i>fail</span><span><i class="sw" style="background:#ffb74d"></i>info (unknown outcome)</span><span><i class="sw" style="background:#64b5f6"></i>watch response</span><span><i class="sw" style="background:#9575cd"></i>progress notification</span><span><i class="sw" style="background:#ffcc80"></i>fault window</span><span><i class="sw" style="border:2px solid #d50000"></i>in a violation</span>
 zoom <button id="zin">+</button><button id="zout">−</button></div>
${cut ? `<p>Showing ${ops.length} of ${opCount} operations, around the first violation.</p>` : ''}
<div id="tlwrap">${svg.join('')}</div>
<div id="detail">hover or click an operation</div>
<script type="application/json" id="opdata">${scriptJson(Object.fromEntries(ops.map((o) => [o.id, describeOp(o)])))}</script>
<script>
(function(){
  var svg=document.getElementById('timeline'), detail=document.getElementById('detail');
  var data=JSON.parse(document.getElementById('opdata').textContent);
  var w0=svg.getAttribute('width')*1, zoom=1;
  function setZoom(z){zoom=Math.max(1,Math.min(64,z));svg.setAttribute('width',String(w0*zoom));}
  document.getElementById('zin').onclick=function(){setZoom(zoom*2)};
  document.getElementById('zout').onclick=function(){setZoom(zoom/2)};
  svg.addEventListener('mouseover',function(e){var id=e.target.getAttribute&&e.target.getAttribute('data-op');if(id&&data[id])detail.textContent=data[id];});
  function clear(){svg.classList.remove('dim');Array.prototype.forEach.call(document.querySelectorAll('.hl'),function(n){n.classList.remove('hl')});Array.prototype.forEach.call(document.querySelectorAll('.anomaly.sel'),function(n){n.classList.remove('sel')});}
  function highlight(ops,resps){clear();svg.classList.add('dim');var first=null;
    ops.forEach(function(id){var n=document.getElementById('op'+id);if(n){n.classList.add('hl');first=first||n;}});
    resps.forEach(function(id){var n=document.getElementById('resp'+id);if(n){n.classList.add('hl');first=first||n;}});
    if(first){var wrap=document.getElementById('tlwrap');var bx=first.getBBox();wrap.scrollLeft=Math.max(0,bx.x*zoom-200);wrap.scrollTop=Math.max(0,bx.y-60);}
    if(ops.length&&data[ops[0]])detail.textContent=data[ops[0]];}
  function ids(s){return s?s.split(',').filter(Boolean):[]}
  Array.prototype.forEach.call(document.querySelectorAll('.anomaly'),function(el){
    el.addEventListener('click',function(){var on=el.classList.contains('sel');if(on){clear();return;}highlight(ids(el.getAttribute('data-ops')),ids(el.getAttribute('data-resps')));el.classList.add('sel');});});
  svg.addEventListener('dblclick',clear);
})();
</script>
</body></html>
`;
}
