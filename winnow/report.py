"""Human-readable summaries of a run: markdown (Prefect artifact) and rich tables (CLI)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from winnow.findings import ISSUE_TYPES


def _issue_rows(summary: dict[str, Any]) -> list[tuple[str, int, int]]:
    scored = summary.get("scored", {})
    flagged = summary.get("flagged", {})
    return [(t, flagged.get(t, 0), scored.get(t, 0)) for t in ISSUE_TYPES if t in scored]


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run summary as a markdown document."""
    lines = [
        f"# winnow audit `{summary['run_id']}`",
        "",
        f"Dataset **{summary.get('dataset')}** ({summary.get('modality')}, {summary['items']} items), "
        f"model `{summary.get('model_id')}` on {summary.get('device')}. Results in `{summary.get('db')}`.",
        "",
        "| issue type | flagged | scored |",
        "|---|---:|---:|",
        *[f"| {t} | {f} | {s} |" for t, f, s in _issue_rows(summary)],
        "",
        f"Duplicate pairs: {summary.get('pairs', 0)}. Open the dashboard with `winnow dashboard --db {summary.get('db')}`.",
    ]
    for line in (embedding_line(summary.get("embed")), reference_line(summary.get("reference"))):
        lines += ["", f"{line[0].upper()}{line[1:]}."] if line else []
    if summary.get("blocking_failed"):
        lines += ["", f"**Blocking checks failed** (run status `failed-checks`): {', '.join(summary['blocking_failed'])}."]
    lines += drift_markdown(summary.get("drift"))
    if summary.get("failed_checks"):
        lines += ["", "## Failed checks", "", *[f"- `{c['check_name']}`: {c['observed']}" for c in summary["failed_checks"]]]
    if summary.get("top"):
        lines += ["", "## Top items", "", "| issue type | item | score | reason |", "|---|---|---:|---|"]
        lines += [f"| {t['issue_type']} | `{t['item_id']}` | {t['score']:.3f} | {t['reason']} |" for t in summary["top"]]
    return "\n".join(lines)


def embedding_line(embed: dict[str, Any] | None) -> str | None:
    """``embeddings: 2 computed, 8 from cache (hit rate 80%)``, or ``None`` before the embed stage."""
    if not embed:
        return None
    rate = f" (hit rate {embed['hit_rate']:.0%})" if "hit_rate" in embed else ""
    return f"embeddings: {embed.get('computed', 0)} computed, {embed.get('cached', 0)} from cache{rate}"


def reference_line(reference: dict[str, Any] | None) -> str | None:
    """What an incremental run was compared with, and how many of its items copy the reference."""
    if not reference:
        return None
    copies = reference.get("duplicates_of_reference") or {}
    found = ", ".join(f"{n} {t.replace('_', ' ')}" for t, n in copies.items()) or "none"
    return (f"incremental against run {reference['run']}: {reference['corpus_items']} reference items "
            f"({reference['searchable']} searched, {reference['sampled']} scored with the batch); duplicates of them: {found}")


def drift_markdown(drift: dict[str, Any] | None) -> list[str]:
    """The drift test against the reference run as markdown lines (none when it did not run)."""
    if not drift:
        return []
    verdict = "**drift**" if drift["drifted"] else "no drift"
    lines = ["", "## Drift", "", f"Against run `{drift['reference']}`: {verdict} (α = {drift['alpha']}). {drift['reason']}", ""]
    lines += ["| test | p-value |", "|---|---:|", *[f"| {test} | {p:.3g} |" for test, p in drift["p_values"].items()]]
    return lines


def print_summary(summary: dict[str, Any], console: Console) -> None:
    """Counts per issue type and the top flagged items, as rich tables."""
    console.print(
        f"[bold]run {summary['run_id']}[/bold] · {escape(str(summary.get('dataset')))} · {summary.get('modality')} · "
        f"{summary['items']} items · model {summary.get('model_id')} on {summary.get('device')}"
    )
    for line in (embedding_line(summary.get("embed")), reference_line(summary.get("reference"))):
        if line:
            console.print(escape(line))
    counts = Table(title="findings per issue type")
    counts.add_column("issue type")
    counts.add_column("flagged", justify="right")
    counts.add_column("scored", justify="right")
    for issue_type, flagged, scored in _issue_rows(summary):
        counts.add_row(issue_type, str(flagged), str(scored))
    console.print(counts)
    console.print(f"duplicate pairs: {summary.get('pairs', 0)}")
    for name, why in summary.get("skipped", {}).items():
        console.print(f"[dim]detector {name} skipped: {escape(why)}[/dim]")
    for name, why in summary.get("failed", {}).items():
        console.print(f"[yellow]detector {name} failed: {escape(why)}[/yellow]")
    drift = summary.get("drift")
    if drift:
        colour = "red" if drift["drifted"] else "green"
        console.print(f"[{colour}]drift vs {drift['reference']}:[/{colour}] {escape(drift['reason'])}")
    for check in summary.get("failed_checks", []):
        console.print(f"[red]check failed:[/red] {escape(check['check_name'])}: {escape(str(check['observed']))}")
    if summary.get("top"):
        top = Table(title="top flagged items")
        for column in ("issue type", "item", "score", "reason"):
            top.add_column(column, overflow="fold")
        for row in summary["top"]:
            top.add_row(row["issue_type"], escape(str(row["item_id"])), f"{row['score']:.3f}", escape(str(row["reason"])))
        console.print(top)
