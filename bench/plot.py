"""The PNG: view latency (p50, with p95 whiskers) against ledger size, v1 against head, log-log."""

from __future__ import annotations

from pathlib import Path

LINES = (
    ("registry", "v1_ms", "v_dot_iu_command_registry v1 (aggregate over the ledger)", "C0", "--"),
    (
        "registry",
        "head_ms",
        "v_dot_iu_command_registry at head (tally + rows past its watermark)",
        "C0",
        "-",
    ),
    ("health", "v1_ms", "v_dot_iu_command_run_health v1 (aggregate over the ledger)", "C3", "--"),
    (
        "health",
        "head_ms",
        "v_dot_iu_command_run_health at head (tally + rows past its watermark)",
        "C3",
        "-",
    ),
)
GOAL_MS = 20


def write(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["views"]["sizes"]
    rows = [entry["rows"] for entry in sizes]
    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    for view, version, label, colour, style in LINES:
        p50 = [entry[view][version]["p50"] for entry in sizes]
        above = [entry[view][version]["p95"] - entry[view][version]["p50"] for entry in sizes]
        axes.errorbar(
            rows,
            p50,
            yerr=[[0] * len(p50), above],
            label=label,
            color=colour,
            linestyle=style,
            marker="o",
            capsize=3,
        )
    axes.axhline(GOAL_MS, color="grey", linewidth=0.8, linestyle=":")
    axes.text(rows[0], GOAL_MS * 1.1, f"goal: p50 < {GOAL_MS} ms", color="grey", fontsize=8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("ledger rows (dot_iu_command_run)")
    axes.set_ylabel("latency, ms (p50; whisker to p95)")
    machine = results["machine"]
    axes.set_title(
        f"View latency against ledger size, v1 and head ({results['views']['revision']})\n"
        f"PostgreSQL {machine['postgresql']}, "
        f"{machine['nproc']} cores, {machine['ram_gb']:.0f} GB RAM, tmpfs",
        fontsize=10,
    )
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
