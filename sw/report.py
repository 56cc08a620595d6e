"""Plain-text tables for the terminal: what a person reads after each command."""

from __future__ import annotations

__all__ = ["table", "eval_table", "calibrate_table", "histogram_text"]


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
    head = (f"{result['dataset']}: {result['samples']} test samples, golden integer model, "
            f"exit {_exit_text(result.get('exit', {'rule': 'none'}))}")
    if "by_timesteps" in result:
        items = list(result["by_timesteps"].items())
    else:
        items = [(result["timesteps"], {"accuracy": result["accuracy"], "avg_timesteps": result["avg_timesteps"],
                                        "avg_spikes": result.get("avg_spikes"),
                                        "relative_complexity": result.get("relative_complexity"),
                                        "exit_histogram": result.get("exit_histogram")})]
    rows = [[T, v["accuracy"], v["avg_timesteps"], v.get("avg_spikes"), v.get("relative_complexity")] for T, v in items]
    text = head + "\n" + table(["T", "accuracy", "avg_timesteps", "avg_spikes", "rel_complexity"], rows)
    hist = items[-1][1].get("exit_histogram")
    if hist and result.get("exit", {}).get("rule", "none") != "none":
        text += f"\nexit timesteps (T={items[-1][0]}): " + histogram_text(hist)
    return text


def _exit_text(rule: dict) -> str:
    if rule["rule"] == "margin":
        return f"margin >= {rule['threshold']}"
    if rule["rule"] == "softmax":
        return f"softmax S <= {rule['threshold']} (shift {rule['shift']}, max p >= {4096 / max(1, rule['threshold']):.3f})"
    return "none"


def histogram_text(hist: dict) -> str:
    """``t=1: 952, t=2: 43, ...``"""
    return ", ".join(f"t={t}: {n}" for t, n in hist.items())


def calibrate_table(result: dict) -> str:
    """What ``quickspike calibrate`` prints."""
    cal, test = result["calibration"], result["test"]
    head = (f"{result['dataset']}: exit {_exit_text(cal['exit'])}, T_max {cal['timesteps']}, chosen on the "
            f"{cal['split']} split for at most {cal['target_accuracy_drop']:g} points below no exit "
            f"({cal['candidates']} settings tried)")
    rows = [
        [cal["split"], cal["samples"], cal["accuracy"], cal["no_exit_accuracy"], cal["avg_timesteps"], None],
        ["test", test["samples"], test["accuracy"], test["no_exit_accuracy"], test["avg_timesteps"],
         test["relative_complexity"]],
    ]
    return (head + "\n" + table(["split", "samples", "accuracy", "no-exit accuracy", "avg_timesteps",
                                 "rel_complexity"], rows)
            + "\ntest exit timesteps: " + histogram_text(test["exit_histogram"]))
