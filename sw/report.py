"""Plain-text tables for the terminal: what a person reads after each command."""

from __future__ import annotations

__all__ = ["table", "eval_table"]


def table(headers: list[str], rows: list[list]) -> str:
    """A left-aligned text table with a rule under the header."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def eval_table(result: dict) -> str:
    """The table ``quickspike eval`` prints."""
    head = f"{result['dataset']}: {result['samples']} test samples, golden integer model"
    if "by_timesteps" in result:
        rows = [[T, v["accuracy"], v["avg_timesteps"], v["avg_spikes"]] for T, v in result["by_timesteps"].items()]
    else:
        rows = [[result["timesteps"], result["accuracy"], result["avg_timesteps"], None]]
    return head + "\n" + table(["T", "accuracy", "avg_timesteps", "avg_spikes"], rows)
