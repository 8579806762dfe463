"""The report of a run: results.json, timeline.svg (hand-written SVG) and index.html."""
import html
import json
import os

from .checkers import lifetimes

NODE_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
STATE_COLORS = {"quorate": "#7fc97f", "not quorate": "#fdc086", "unreachable": "#bbbbbb", "down": "#444444"}
WIDTH, LEFT, ROW, TOP = 1100, 110, 26, 40


def write(directory, results, records, witness):
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True, default=str)
    svg = timeline(results, records, witness)
    with open(os.path.join(directory, "timeline.svg"), "w") as f:
        f.write(svg)
    with open(os.path.join(directory, "index.html"), "w") as f:
        f.write(page(results))


def _state(s):
    if s.get("pid") is None:
        return "down"
    if not s.get("reachable"):
        return "unreachable"
    return "quorate" if s.get("is_quorate") else "not quorate"


def _segments(points, end):
    """[(t, value)] sorted -> [(start, stop, value)], each value held until the next point."""
    out = []
    for (t, v), nxt in zip(points, points[1:] + [(end, None)]):
        if out and out[-1][2] == v and out[-1][1] == t:
            out[-1] = (out[-1][0], nxt[0], v)
        else:
            out.append((t, nxt[0], v))
    return out


def timeline(results, records, witness):
    t0 = next((r["t"] for r in records if r["type"] == "note" and r.get("what") == "start"), None)
    if t0 is None:
        t0 = min((r["t"] for r in records), default=0.0)
    end = max((r["t"] for r in records), default=t0 + 1) - t0
    nodes = [f"node{i + 1}" for i in range(results.get("nodes", 3))]
    by_resource = {}
    for life in lifetimes(witness):
        by_resource.setdefault(str(life["resource"]), []).append(life)
    resources = sorted(by_resource.items())
    height = TOP + ROW * (len(nodes) + len(resources)) + 90
    span = max(end, 1.0)

    def x(t):
        return LEFT + (WIDTH - LEFT - 20) * max(0.0, min(t, span)) / span

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14">{_e(results.get("scenario"))} seed {_e(results.get("seed"))}: '
           f'{"PASS" if results.get("valid") else "FAIL"}</text>']
    bottom = TOP + ROW * (len(nodes) + len(resources))
    for f in results.get("faults", []):  # faults shaded behind everything
        a, b = x(f["start"]), x(f["stop"] if f["stop"] is not None else span)
        out.append(f'<rect x="{a:.1f}" y="{TOP - 6}" width="{max(b - a, 1):.1f}" height="{bottom - TOP + 6}" '
                   f'fill="#d62728" fill-opacity="0.12"><title>{_e(f["fault"])} {_e(f.get("target") or f.get("sides") or "")}'
                   f'</title></rect>')
        out.append(f'<text x="{a + 2:.1f}" y="{TOP - 8}" font-size="10" fill="#a00">{_e(f["fault"])}</text>')
    for row, name in enumerate(nodes):
        y = TOP + ROW * row
        out.append(f'<text x="10" y="{y + 15}">{_e(name)}</text>')
        samples = sorted((r for r in records if r["type"] in ("sample", "converge") and r.get("node") == name),
                         key=lambda r: r["t"])
        for a, b, state in _segments([(s["t"] - t0, _state(s)) for s in samples], end):
            out.append(f'<rect x="{x(a):.1f}" y="{y + 2}" width="{max(x(b) - x(a), 0.5):.1f}" height="{ROW - 8}" '
                       f'fill="{STATE_COLORS[state]}"><title>{_e(name)} {state}</title></rect>')
        leads = [(s["t"] - t0, s.get("reachable") and s.get("leader") == name) for s in samples]
        for a, b, is_leader in _segments(leads, end):
            if is_leader:
                out.append(f'<rect x="{x(a):.1f}" y="{y + ROW - 7}" width="{max(x(b) - x(a), 0.5):.1f}" '
                           f'height="4" fill="black"><title>{_e(name)} leader</title></rect>')
    for row, (resource, ivs) in enumerate(resources):
        y = TOP + ROW * (len(nodes) + row)
        label = results.get("resource_names", {}).get(resource, resource[:8])
        out.append(f'<text x="10" y="{y + 15}">{_e(label)}</text>')
        for life in ivs:
            node, a, b = str(life["node"]), life["start"], life["last"]
            color = NODE_COLORS[(int(node[4:]) - 1) % len(NODE_COLORS)] if node[4:].isdigit() else "#999"
            out.append(f'<rect x="{x(a - t0):.1f}" y="{y + 4}" width="{max(x(b - t0) - x(a - t0), 1):.1f}" '
                       f'height="{ROW - 10}" fill="{color}"><title>{_e(label)} on {_e(node)}</title></rect>')
    y = bottom + 20
    out.append(f'<line x1="{LEFT}" y1="{bottom + 2}" x2="{WIDTH - 20}" y2="{bottom + 2}" stroke="black"/>')
    for s in range(0, int(span) + 1, max(5, int(span / 10) // 5 * 5 or 5)):
        out.append(f'<text x="{x(s):.1f}" y="{bottom + 15}" font-size="10" text-anchor="middle">{s}s</text>')
    legend = list(STATE_COLORS.items()) + [("leader", "black"), ("fault", "#f3c7c7")] + \
        [(f"runs on {n}", NODE_COLORS[i % len(NODE_COLORS)]) for i, n in enumerate(nodes)]
    for i, (label, color) in enumerate(legend):
        lx, ly = 10 + (i % 6) * 175, y + 15 + (i // 6) * 18
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{color}"/>'
                   f'<text x="{lx + 16}" y="{ly}">{_e(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _e(value):
    return html.escape(str(value), quote=True)


def page(results):
    rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="{"pass" if v["valid"] else "fail"}">{"pass" if v["valid"] else "FAIL"}'
        f'</td><td><pre>{_e(json.dumps(_brief(v), sort_keys=True, default=str)[:2000])}</pre></td></tr>'
        for name, v in results["verdicts"].items())
    ops = "".join(f"<tr><td>{_e(k)}</td><td>{v['ok']}</td><td>{v['fail']}</td><td>{v['unknown']}</td></tr>"
                  for k, v in sorted(results["op_counts"].items()))
    faults = "".join(f"<tr><td>{_e(f['fault'])}</td><td>{f['start']}</td><td>{_e(f['stop'])}</td>"
                     f"<td>{_e(f.get('target') or f.get('sides') or '')}</td><td>{_e(f.get('victims', ''))}</td></tr>"
                     for f in results["faults"])
    failovers = "".join(f"<tr><td>{_e(f['kind'])}</td><td>{_e(results.get('resource_names', {}).get(f['resource'], f['resource']))}"
                        f"</td><td>{_e(f['from'])}</td><td>{_e(f['to'])}</td><td>{_e(f['seconds'])}</td></tr>"
                        for f in results["failover_times"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>chaos {_e(results['scenario'])} seed {_e(results['seed'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{border:1px solid #ccc;padding:3px 8px;vertical-align:top}}
table{{border-collapse:collapse;margin-bottom:1.5em}} .pass{{background:#cfc}} .fail{{background:#fcc}}
pre{{margin:0;white-space:pre-wrap;max-width:60em}}</style></head><body>
<h1>chaos {_e(results['scenario'])}, seed {_e(results['seed'])}: <span class="{'pass' if results['valid'] else 'fail'}">
{'PASS' if results['valid'] else 'FAIL'}</span></h1>
<p>{_e(results['nodes'])} nodes, {_e(results['duration'])} s of faults, {_e(results['wall_seconds'])} s in all.
{_e('; '.join(results.get('notes', [])))}</p>
<img src="timeline.svg" alt="timeline">
<h2>Verdicts</h2><table><tr><th>checker</th><th>verdict</th><th>detail</th></tr>{rows}</table>
<h2>Operations</h2><table><tr><th>op</th><th>ok</th><th>fail</th><th>unknown</th></tr>{ops}</table>
<h2>Faults</h2><table><tr><th>fault</th><th>start s</th><th>stop s</th><th>target</th><th>left without quorum</th></tr>{faults}</table>
<h2>Failover times</h2><table><tr><th>fault</th><th>group</th><th>from</th><th>to</th><th>seconds</th></tr>{failovers}</table>
<p>Raw: <a href="results.json">results.json</a>, <a href="history.jsonl">history.jsonl</a>,
<a href="witness.jsonl">witness.jsonl</a>, <a href="final.json">final.json</a></p>
</body></html>
"""


def _brief(verdict):
    """A verdict without its bulky per-item lists (those are in results.json)."""
    out = {k: v for k, v in verdict.items() if k not in ("valid", "keys", "minority_nodes")}
    if "keys" in verdict:
        out["keys"] = {k: {"valid": r["valid"], "ops": r["ops"], **({"detail": r["detail"]} if r["detail"] else {})}
                       for k, r in verdict["keys"].items()}
    return out
