"""Charts drawn on the server as SVG (no script, so the CSP stays strict):
usage bars for quotas and node capacity, and the network topology picture."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass
class Bar:
    label: str
    used: float
    limit: float  # < 0: unlimited
    unit: str = ""

    @property
    def fraction(self) -> float:
        if self.limit <= 0:
            return 0.0 if self.limit < 0 or not self.used else 1.0
        return min(self.used / self.limit, 1.0)

    @property
    def text(self) -> str:
        limit = "unlimited" if self.limit < 0 else f"{self.limit:g}"
        return f"{self.used:g} / {limit} {self.unit}".strip()


def bars(items: list[Bar], width: int = 480) -> str:
    """Horizontal usage bars, one row each: green, amber past 75 %, red past 90 %."""
    row, bar_x, bar_w = 28, 130, width - 130 - 170
    parts = [
        f'<svg class="chart" role="img" aria-label="usage" width="{width}" height="{row * len(items) + 6}" '
        f'viewBox="0 0 {width} {row * len(items) + 6}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, b in enumerate(items):
        y = i * row + 4
        f = b.fraction
        color = "#c0392b" if f > 0.9 else "#e67e22" if f > 0.75 else "#27ae60"
        parts.append(
            f'<g class="bar" data-label="{escape(b.label)}" data-fraction="{f:.3f}">'
            f'<text x="0" y="{y + 15}" font-size="13">{escape(b.label)}</text>'
            f'<rect x="{bar_x}" y="{y + 3}" width="{bar_w}" height="16" rx="3" fill="#e5e8ec"/>'
            f'<rect x="{bar_x}" y="{y + 3}" width="{bar_w * f:.1f}" height="16" rx="3" fill="{color}"/>'
            f'<text x="{bar_x + bar_w + 8}" y="{y + 15}" font-size="12">{escape(b.text)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class TopoNet:
    name: str
    cidrs: list[str]
    external: bool
    servers: list[str]  # names of servers with a port on it
    routers: list[str]  # names of routers with an interface (or gateway) on it


def topology(nets: list[TopoNet]) -> str:
    """Networks as columns; routers above the networks they join, servers below."""
    col, top = 200, 20
    routers = sorted({r for n in nets for r in n.routers})
    height = 120 + 30 * max([len(n.servers) for n in nets] + [1]) + (60 if routers else 0)
    width = max(col * len(nets), 220)
    parts = [
        f'<svg class="topology" role="img" aria-label="network topology" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    router_y = top
    net_y = top + (60 if routers else 0)
    router_x = {r: 20 + i * 160 for i, r in enumerate(routers)}
    for r, x in router_x.items():
        parts.append(
            f'<g class="router"><rect x="{x}" y="{router_y}" width="140" height="30" rx="15" fill="#8e44ad"/>'
            f'<text x="{x + 70}" y="{router_y + 20}" font-size="12" fill="#fff" text-anchor="middle">'
            f"{escape(r)}</text></g>"
        )
    for i, n in enumerate(nets):
        x = 10 + i * col
        for r in n.routers:
            parts.append(
                f'<line x1="{router_x[r] + 70}" y1="{router_y + 30}" x2="{x + 90}" y2="{net_y}" '
                'stroke="#8e44ad" stroke-width="2"/>'
            )
        fill = "#2c3e50" if n.external else "#2980b9"
        label = escape(n.name) + (" (external)" if n.external else "")
        parts.append(
            f'<g class="network" data-name="{escape(n.name)}">'
            f'<rect x="{x}" y="{net_y}" width="180" height="44" rx="4" fill="{fill}"/>'
            f'<text x="{x + 90}" y="{net_y + 18}" font-size="12" fill="#fff" text-anchor="middle">{label}</text>'
            f'<text x="{x + 90}" y="{net_y + 35}" font-size="11" fill="#fff" text-anchor="middle">'
            f"{escape(', '.join(n.cidrs))}</text>"
        )
        if n.servers:  # one trunk behind the server boxes
            last = net_y + 64 + (len(n.servers) - 1) * 30
            parts.append(
                f'<line x1="{x + 90}" y1="{net_y + 44}" x2="{x + 90}" y2="{last}" stroke="#7f8c8d"/>'
            )
        for j, s in enumerate(n.servers):
            y = net_y + 64 + j * 30
            parts.append(
                f'<rect x="{x + 20}" y="{y}" width="140" height="24" rx="3" fill="#ecf0f1" stroke="#7f8c8d"/>'
                f'<text x="{x + 90}" y="{y + 16}" font-size="11" text-anchor="middle">{escape(s)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
