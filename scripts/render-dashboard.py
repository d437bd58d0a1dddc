#!/usr/bin/env python3
"""Render a Grafana dashboard JSON of deploy/monitoring to a static HTML page, with the data a real Prometheus
returns for its queries. Grafana itself is not packaged by Debian (nor on PyPI/npm), so this stands in for it for the
docs' screenshots: panels are placed on Grafana's 24-column grid from gridPos, every target's expr is sent unchanged
(only $__rate_interval is replaced, as Grafana does) to Prometheus' HTTP API (query_range for time series and stat
sparklines, query at the end for stat values and tables), legends follow legendFormat and values the panel's unit.
What it does not do: thresholds, overrides, tooltips, or anything interactive.

usage: render-dashboard.py DASHBOARD.json PROMETHEUS_URL START END STEP RATE_INTERVAL OUT.html
       (START/END: Unix seconds; STEP, RATE_INTERVAL: Prometheus durations such as 2s, 10s)
"""

import html
import json
import math
import re
import sys
import urllib.parse
import urllib.request

WIDTH = 1600
ROW = 30
GAP = 8
HEADER = 64
PALETTE = ["#73BF69", "#F2CC0C", "#8AB8FF", "#FF780A", "#F2495C", "#5794F2", "#B877D9", "#FADE2A", "#37872D", "#C4162A"]


def query(url, path, params):
    full = f"{url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(full, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"{path} {params.get('query')}: {body}")
    return body["data"]["result"]


def fmt(value, unit):
    if value is None or math.isnan(value):
        return "No data"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        a = abs(value)
        if a >= 86400:
            return f"{value / 86400:.1f} day"
        if a >= 3600:
            return f"{value / 3600:.1f} hour"
        if a >= 60:
            return f"{value / 60:.1f} min"
        if a >= 1:
            return f"{value:.2f} s"
        if a >= 0.001:
            return f"{value * 1000:.1f} ms"
        if a == 0:
            return "0 s"
        return f"{value * 1e6:.0f} µs"
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit, "")
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.2f}M{suffix}"
    if a >= 1e3:
        return f"{value / 1e3:.2f}K{suffix}"
    if a == int(a) and a < 1e3:
        return f"{int(value)}{suffix}"
    return f"{value:.3g}{suffix}"


def legend(fmt_text, metric):
    if fmt_text:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt_text).strip() or "(empty)"
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{metric.get('__name__', '')}{{{labels}}}"


def nice_ticks(lo, hi, n=4):
    if hi <= lo:
        hi = lo + 1
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / n))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    # From the step at or below lo to the first at or above hi, so no line leaves the plot.
    first, last = math.floor(lo / step), math.ceil(hi / step)
    return [round(k * step, 12) for k in range(first, last + 1)]


def timeseries_svg(series, w, h, start, end, unit):
    left, right, top, bottom = 70, 10, 8, 22
    pw, ph = w - left - right, h - top - bottom
    values = [v for s in series for _, v in s["points"] if not math.isnan(v)]
    lo, hi = (min(values + [0]), max(values + [0])) if values else (0, 1)
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1] if ticks[-1] > ticks[0] else ticks[0] + 1
    x = lambda t: left + (t - start) / (end - start) * pw
    y = lambda v: top + ph - (v - lo) / (hi - lo) * ph
    out = [f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">']
    for t in ticks:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#2c3235"/>')
        out.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" fill="#9fa7b3" font-size="11" text-anchor="end">{html.escape(fmt(t, unit))}</text>')
    n_x = 6
    for i in range(n_x + 1):
        t = start + (end - start) * i / n_x
        label = f"{int((t - start) // 60):d}:{int((t - start) % 60):02d}"
        out.append(f'<text x="{x(t):.1f}" y="{h - 6}" fill="#9fa7b3" font-size="11" text-anchor="middle">{label}</text>')
    for s in series:
        segments, current = [], []
        for t, v in s["points"]:
            if math.isnan(v):
                if current:
                    segments.append(current)
                current = []
            else:
                current.append(f"{x(t):.1f},{y(v):.1f}")
        if current:
            segments.append(current)
        for seg in segments:
            out.append(f'<polyline fill="none" stroke="{s["color"]}" stroke-width="1.5" points="{" ".join(seg)}"/>')
    out.append("</svg>")
    return "".join(out)


def sparkline(points, w, h, color):
    vals = [v for _, v in points if not math.isnan(v)]
    if len(vals) < 2:
        return ""
    lo, hi = min(vals), max(vals)
    hi = hi if hi > lo else lo + 1
    t0, t1 = points[0][0], points[-1][0]
    pts = " ".join(f"{(t - t0) / (t1 - t0) * w:.1f},{h - (v - lo) / (hi - lo) * h:.1f}" for t, v in points if not math.isnan(v))
    return f'<svg width="{w}" height="{h}" class="spark"><polyline fill="none" stroke="{color}" stroke-opacity="0.6" stroke-width="1.5" points="{pts}"/></svg>'


def render(dashboard, url, start, end, step, rate):
    cell = (WIDTH - GAP) / 24
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    height = HEADER + bottom * ROW + GAP
    parts = []
    color_index = 0
    for p in dashboard["panels"]:
        g = p["gridPos"]
        left, top = GAP + g["x"] * cell, HEADER + g["y"] * ROW
        w, h = g["w"] * cell - GAP, g["h"] * ROW - GAP
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        body = ""
        exprs = [(t["expr"].replace("$__rate_interval", rate), t.get("legendFormat", "")) for t in p["targets"]]
        if p["type"] == "timeseries":
            series = []
            for expr, lf in exprs:
                for r in query(url, "query_range", {"query": expr, "start": start, "end": end, "step": step}):
                    points = [(float(t), float(v)) for t, v in r["values"]]
                    series.append({"name": legend(lf, r["metric"]), "points": points, "color": PALETTE[color_index % len(PALETTE)]})
                    color_index += 1
            svg = timeseries_svg(series, int(w - 16), int(h - 58), start, end, unit)
            items = "".join(f'<span class="item"><i style="background:{s["color"]}"></i>{html.escape(s["name"])}</span>' for s in series) or '<span class="nodata">No data</span>'
            body = f'{svg}<div class="legend">{items}</div>'
        elif p["type"] == "stat":
            expr = exprs[0][0]
            now = query(url, "query", {"query": expr, "time": end})
            value = float(now[0]["value"][1]) if now else None
            rng = query(url, "query_range", {"query": expr, "start": start, "end": end, "step": step})
            spark = sparkline([(float(t), float(v)) for t, v in rng[0]["values"]], int(w - 16), int(h - 40), "#73BF69") if rng else ""
            color = "#73BF69" if value is not None else "#9fa7b3"
            body = f'{spark}<div class="stat" style="color:{color}">{html.escape(fmt(value, unit))}</div>'
        elif p["type"] == "table":
            rows = query(url, "query", {"query": exprs[0][0], "time": end})
            hidden = set(next((t["options"].get("excludeByName", {}) for t in p.get("transformations", []) if t["id"] == "organize"), {}))
            cols = sorted({k for r in rows for k in r["metric"]} - hidden)
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(r['metric'].get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
            body = f'<table><tr>{head}</tr>{trs}</table>' if rows else '<div class="nodata">No data</div>'
        parts.append(
            f'<div class="panel" style="left:{left:.0f}px;top:{top}px;width:{w:.0f}px;height:{h}px">'
            f'<div class="title">{html.escape(p["title"])}</div>{body}</div>'
        )
    minutes = (end - start) / 60
    return height, f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin:0; background:#111217; font-family: Inter, "DejaVu Sans", Helvetica, Arial, sans-serif; color:#ccccdc; }}
.header {{ position:absolute; left:{GAP}px; top:12px; right:{GAP}px; }}
.header h1 {{ font-size:18px; font-weight:500; margin:0; }}
.header .sub {{ font-size:12px; color:#9fa7b3; margin-top:4px; }}
.panel {{ position:absolute; background:#181b1f; border:1px solid #2c3235; border-radius:2px; box-sizing:border-box; padding:6px 8px; overflow:hidden; }}
.title {{ font-size:13px; font-weight:500; margin-bottom:6px; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }}
.legend {{ font-size:11px; color:#ccccdc; margin-top:2px; }}
.legend .item {{ margin-right:14px; white-space:nowrap; }}
.legend i {{ display:inline-block; width:14px; height:4px; margin-right:5px; vertical-align:middle; border-radius:1px; }}
.stat {{ position:absolute; left:0; right:0; top:42%; text-align:center; font-size:30px; font-weight:500; }}
.spark {{ position:absolute; left:8px; bottom:6px; }}
.nodata {{ color:#9fa7b3; font-size:12px; text-align:center; margin-top:20px; }}
table {{ border-collapse:collapse; width:100%; font-size:12px; }}
th {{ text-align:left; color:#6e9fff; font-weight:500; border-bottom:1px solid #2c3235; padding:4px 6px; }}
td {{ border-bottom:1px solid #22252b; padding:4px 6px; }}
</style></head><body>
<div class="header"><h1>{html.escape(dashboard["title"])}</h1>
<div class="sub">Last {minutes:.0f} minutes of a test run, data from Prometheus scraping the binaries every {step}; $__rate_interval = {rate}.
Rendered from the dashboard JSON by scripts/render-dashboard.py (Grafana is not packaged here): same panels, queries, legends, units.</div></div>
{"".join(parts)}
</body></html>"""


def main():
    path, url, start, end, step, rate, out = sys.argv[1:]
    dashboard = json.load(open(path))
    height, page = render(dashboard, url.rstrip("/"), float(start), float(end), step, rate)
    with open(out, "w") as f:
        f.write(page)
    print(height)


if __name__ == "__main__":
    main()
