"""Rendering: the report as markdown and as one self-contained HTML page (figures inlined as data
URIs, no scripts, no network), with a browser of judged samples."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from rlhflab.report.figures import ordered

STYLE = ("body{font-family:sans-serif;max-width:60em;margin:auto;padding:1em}table{border-collapse:collapse}"
         ".wide{overflow-x:auto;max-width:100%}"
         "td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%;vertical-align:top}"
         "img{max-width:100%}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}")


def fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def verdict(v: str) -> str:
    """The verdict as the table shows it (bold when the interval decides the claim)."""
    return f"**{v}**" if v in ("reproduced", "contradicted") else v


def provenance(manifests: dict[str, dict | None]) -> str:
    """The report's header line: the machine(s) and the rlhflab commit the stages' numbers came from,
    read from each stage's manifest (stage name -> manifest). Runs are bit-identical on one CPU family
    and differ across families, so a reader comparing two reports needs this line first."""
    from rlhflab.provenance import describe

    machines: dict[str, list[str]] = {}
    commits: set[str] = set()
    for stage, m in manifests.items():
        if m:
            machines.setdefault(describe(m.get("machine")), []).append(stage)
            commits.add((m.get("versions") or {}).get("rlhflab_commit") or "")
    if not machines:
        return ""
    if len(machines) == 1:
        text = f"Computed on {next(iter(machines))}"
    else:  # a run resumed or cached across machines: say which stage ran where
        text = "Computed on several machines: " + "; ".join(f"{m} ({', '.join(s)})" for m, s in machines.items())
    shown = sorted(c for c in commits if c)
    if shown:
        text += f", rlhflab {' and '.join(c[:12] + ('-dirty' if c.endswith('-dirty') else '') for c in shown)}"
    return text + ". Runs repeat bit for bit on one CPU family, not across families."


def wide(table: str) -> str:
    """A table in a box that scrolls sideways: a table with a column per test set is wider than
    the page, and would otherwise run off it."""
    return f'<div class="wide">{table}</div>'


def anchor(title: str) -> str:
    """A heading's anchor as GitHub derives it from markdown, so one contents list serves both pages."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def headings(sections: list[tuple[str, str]], samples: bool = False) -> list[str]:
    """The report's second-level headings in order: its table of contents."""
    return ["Findings", *(name for name, _ in sections), "Figures", *(["Sample browser"] if samples else [])]


def _md_to_html(md: str) -> str:
    """The report's markdown is paragraphs and pipe tables only; render exactly that."""
    out, table = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                table.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if table:
            head, *body = table
            out.append(wide("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
                            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                                      for r in body) + "</table>"))
            table = []
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "".join(out)


def _read(path: Path):
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def sample_browser(eval_results: dict | None, eval_dir: Path | None, per_set: int = 8) -> str:
    """Collapsible blocks of the first per_set inputs of each test set: the reference and each
    policy's output with the judge's verdict, from eval_dir/annotations/<policy>_vs_reference/."""
    e = eval_results
    if not e or eval_dir is None:
        return ""
    blocks = []
    for s in e["test_sets"]:
        ann = {p: _read(Path(eval_dir) / "annotations" / f"{p}_vs_reference" / f"{s}.json") for p in ordered(e["pvr"])}
        ann = {p: a for p, a in ann.items() if a}
        if not ann:
            continue
        first = next(iter(ann.values()))
        for i in range(min(per_set, len(first))):
            rows = [f"<tr><td>reference</td><td>{html.escape(first[i]['output_1'])}</td><td></td></tr>"]
            for p, a in ann.items():
                if i >= len(a):
                    continue
                pref = a[i]["preference"]
                says = "invalid" if pref is None else f"{100 * (pref - 1):.0f}% beats reference"
                rows.append(f"<tr><td>{p}</td><td>{html.escape(a[i]['output_2'])}</td><td>{says}</td></tr>")
            blocks.append(f"<details><summary>{html.escape(s)} #{i}</summary><pre>"
                          f"{html.escape(first[i]['instruction'])}</pre><table>{''.join(rows)}</table></details>")
    return "\n".join(blocks)


def render_markdown(title: str, findings: list[dict], sections: list[tuple[str, str]],
                    figures: list[tuple[str, str, str]], note: str = "", header: str = "") -> str:
    """report.md: findings table (and the note on how verdicts are reached), sections, then figures (file, title, caption) as images."""
    md = [f"# rlhflab report: {title}", *(["", header] if header else []), "", "Contents:", "",
          *(f"- [{h}](#{anchor(h)})" for h in headings(sections)), "", "## Findings", "",
          "| claim (from the papers) | verdict here | evidence |", "|---|---|---|"]
    md += [f"| {f['claim']} | {verdict(f['verdict'])} | {f['evidence']} |" for f in findings]
    if note:
        md += ["", note]
    for name, body in sections:
        md += ["", f"## {name}", "", body]
    md += ["", "## Figures", ""]
    md += [f"![{t}]({f})\n\n{c}\n" for f, t, c in figures]
    return "\n".join(md) + "\n"


def render_html(title: str, findings: list[dict], sections: list[tuple[str, str]],
                figures: list[tuple[str, str, str]], out_dir: Path, samples: str = "", note: str = "",
                header: str = "") -> str:
    """index.html: the same content, each figure (read from out_dir/file) inlined as a data URI."""
    def h2(name: str) -> str:
        return f'<h2 id="{anchor(name)}">{html.escape(name)}</h2>'

    toc = "".join(f'<li><a href="#{anchor(h)}">{html.escape(h)}</a></li>' for h in headings(sections, bool(samples)))
    parts = [f"<h1>rlhflab report: {html.escape(title)}</h1>", *([f"<p>{html.escape(header)}</p>"] if header else []),
             f"<nav><p>Contents</p><ul>{toc}</ul></nav>", h2("Findings"),
             wide("<table><tr><th>claim</th><th>verdict</th><th>evidence</th></tr>"
                  + "".join(f"<tr><td>{html.escape(f['claim'])}</td><td>{html.escape(f['verdict'])}</td>"
                            f"<td>{html.escape(f['evidence'])}</td></tr>" for f in findings) + "</table>")]
    if note:
        parts.append(_md_to_html(note))
    for name, body in sections:
        parts.append(h2(name) + _md_to_html(body))
    parts.append(h2("Figures"))
    for f, t, c in figures:
        data = base64.b64encode((Path(out_dir) / f).read_bytes()).decode()
        parts.append(f'<figure><img alt="{html.escape(t)}" data-figure="{html.escape(Path(f).stem)}" '
                     f'src="data:image/png;base64,{data}"><figcaption>{html.escape(c)}</figcaption></figure>')
    if samples:
        parts.append(h2("Sample browser") + samples)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>rlhflab report: "
            f"{html.escape(title)}</title><link rel='icon' href='data:,'><style>{STYLE}</style></head>"
            f"<body>{''.join(parts)}</body></html>")
