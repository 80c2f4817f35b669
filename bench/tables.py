"""bench/results.md: the tables of one run, each with a line on how to read it."""

from __future__ import annotations

import statistics


def _f(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _x(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:,.0f}x"


def tree(results: dict) -> str:
    start, end = results.get("tree_start"), results.get("tree_end")
    if not start or not end:
        return ""
    line = f" Tree: commit {start['commit']}"
    if end["commit"] != start["commit"]:
        line += f" at the start, {end['commit']} at the end"
    changed = sorted(set(start["changed"]) | set(end["changed"]))
    line += (f"; uncommitted changes measured: {', '.join(c.split()[-1] for c in changed)}."
             if changed else ", nothing uncommitted under the measured paths.")
    return line


def machine(results: dict) -> list[str]:
    m = results["machine"]
    return [
        f"Machine: {m['cpu']}, nproc {m['nproc']}, {m['ram_gb']:.1f} GB RAM, PostgreSQL "
        f"{m['postgresql']} (embedded, {m['storage']}, {', '.join(m['server_settings'])}), "
        f"Python {m['python']}; load average {m['load_average_start'][0]:.2f} at start, "
        f"{m['load_average_end'][0]:.2f} at end; {results['started']}, "
        f"{results['duration_s'] / 60:.1f} min." + tree(results)
    ]


def _spread(ratios: list[float] | None) -> str:
    """' (middle half a-b, all c-d)' of per-round ratios, or '' without them."""
    if not ratios or len(ratios) < 4:
        return ""
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f" ({q1:.2f}-{q3:.2f}, {min(ratios):.2f}-{max(ratios):.2f})"


def throughput(t: dict) -> list[str]:
    labels = list(t["variants"])
    out = [
        "",
        f"**1. Logger against plain INSERT** (pgbench, {t['clients']} clients, "
        f"{t['threads']} threads, {t['rounds']} rounds x {t['seconds_per_run']} s per "
        f"variant, rotated; median tps and, in brackets, the median per-round ratio "
        f"to the baseline `{t['baseline']}`; in the 'applied' workloads every call is an "
        f"'applied' apply row (the gate hold and the gate rule on every call), in the 'verify' "
        f"one a 'verified' row; the gates the commands need are open "
        f"({', '.join(t['gates_open_at_head'])}); head = {t['revisions']['head']}, "
        f"0009 = {t['revisions']['0009']})",
        "",
        "| workload | pgbench -M | " + " | ".join(labels) + " |",
        "|---|---|" + "---:|" * len(labels),
    ]
    for workload, modes in t["workloads"].items():
        for mode, variants in modes.items():
            cells = [
                f"{_f(variants[label]['tps_p50'], 0)} ({variants[label]['ratio_p50']:.3f})"
                for label in labels
            ]
            out.append(f"| {workload} | {mode} | " + " | ".join(cells) + " |")
    goal = t["goal"]
    simple = [modes["simple"][goal]["ratio_p50"] for modes in t["workloads"].values()
              if "simple" in modes]
    if simple:
        verdicts = ", ".join(
            f"{workload}: {modes['simple'][goal]['ratio_p50']:.3f} "
            f"{'met' if modes['simple'][goal]['ratio_p50'] >= t['goal_ratio'] else 'MISSED'}"
            f"{_spread(modes['simple'][goal].get('ratios'))}"
            for workload, modes in t["workloads"].items() if "simple" in modes)
        out += ["", f"How to read: the ratio is what the variant keeps of a plain INSERT's tps "
                f"in the same round; the goal is {goal} >= {t['goal_ratio']} with the default "
                f"protocol (simple). {verdicts}. In brackets, how the per-round ratios spread: "
                f"the middle half of the rounds, then all of them."]
    if t.get("logger_run_links"):
        links = t["logger_run_links"]
        sealing = (f"Sealing: each {goal} run made {links['min']:,} to {links['max']:,} seal "
                   f"links (one per fold that moved the watermark)")
        if t.get("logger_sealed_share"):
            share = t["logger_sealed_share"]
            sealing += (f", which sealed {share['min']:.0%} to {share['max']:.0%} of the rows it "
                        f"wrote (the rest, past the candidate its last fold recorded, wait for "
                        f"the next folds)")
        out.append(sealing + ".")
    return out


def logger_parts(p: dict) -> list[str]:
    if p.get("skipped"):
        return ["", f"**1b. Where the logger's work goes**: skipped, {p['skipped']}."]
    counted = p["instructions_per_call"]
    whole = counted["logger (whole)"]
    out = [
        "",
        f"**1b. Where the logger's work goes** (instructions per call, counted by valgrind's "
        f"callgrind inside exec_simple_query of a single-user backend on a copy of the bench "
        f"cluster: {p['calls']:,} calls after {p['warm']:,} warm ones, each a simple-protocol "
        f"statement and a transaction of its own, the window holding, for the variants that "
        f"fold, one fold that seals the {p['warm']:,} rows of the warm-up; copies of logger "
        f"{p['logger']} at {p['revision']}, created by its owner role as the shipped one is, "
        f"with one part switched off each; an 'applied' row of dot_iu_add_piece with its gates "
        f"open)",
        "",
        "| variant | instructions per call | saved against the whole logger |",
        "|---|---:|---:|",
    ]
    for label, value in counted.items():
        saved = p["saved"].get(label)
        cell = "" if saved is None else f"{saved:+,.0f} ({saved / whole:+.1%})"
        out.append(f"| {label} | {value:,.0f} | {cell} |")
    control = p["saved"].get("logger (whole, a second copy)")
    agree = "" if control is None else (
        f" (the second copy of the whole logger differs by {abs(control):,.0f} per call)")
    out += ["", f"How to read: deterministic{agree}; a part costs what switching it off saves. "
            "Instructions are not time: the executor's start-up and catalog lookups miss the "
            "CPU's caches more than the parser's loops, so the logger's share of time (item 1) "
            "is larger than its share of instructions; what a part saves here ranks the parts, "
            "it does not predict item 1's ratio."]
    if p["missing_parts"]:
        out.append(f"Not found in this logger (not measured): {', '.join(p['missing_parts'])}.")
    if p.get("note"):
        out.append(p["note"])
    return out


def views(v: dict) -> list[str]:
    sizes = v["sizes"]
    tail = f"{v['tail']:,} rows past the watermark"
    short = [entry for entry in sizes if entry["rows_past_watermark"] < v["tail"]]
    if short:
        tail += " (" + ", ".join(
            f"all {entry['rows_past_watermark']:,} at {entry['rows']:,}" for entry in short) + ")"
    out = [
        "",
        f"**2. View latency, ms** (`SELECT *` from a client, p50 / p95 of {v['runs']} runs, "
        f"v1 (as 0003_operator_runtime created them) and head ({v['revision']}) interleaved on "
        f"the same rows, with {tail}; head returned exactly v1's rows at every size; tally "
        f"rebuild = fn_dot_iu_command_run_tally_rebuild() at head, timed when the ledger held "
        f"all but those last rows, sealed already: what a full recount costs)",
        "",
        "| ledger rows | registry v1 | registry head | v1/head | health v1 | health head | "
        "v1/head | tally rebuild |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in sizes:
        r, h = entry["registry"], entry["health"]
        out.append(
            f"| {entry['rows']:,} | {_f(r['v1_ms']['p50'])} / {_f(r['v1_ms']['p95'])} | "
            f"{_f(r['head_ms']['p50'])} / {_f(r['head_ms']['p95'])} | "
            f"{_x(r['speedup_p50'])} | {_f(h['v1_ms']['p50'])} / {_f(h['v1_ms']['p95'])} | "
            f"{_f(h['head_ms']['p50'])} / {_f(h['head_ms']['p95'])} | "
            f"{_x(h['speedup_p50'])} | {_f(entry['rebuild_seconds'])} s |"
        )
    if v.get("growth"):
        g = v["growth"]
        out += [
            "",
            f"How to read: from {g['from_rows']:,} to {g['to_rows']:,} rows the head p50 "
            f"changes x{g['registry_head_p50_ratio']:.2f} (registry) and "
            f"x{g['health_head_p50_ratio']:.2f} (health); v1: "
            f"x{g['registry_v1_p50_ratio']:,.0f} and x{g['health_v1_p50_ratio']:,.0f}.",
        ]
    return out


def tooling(tl: dict) -> list[str]:
    mig, cl, cmd = tl["migrate"], tl["clone"], tl["commands"]
    out = [
        "",
        f"**3-5. Tooling** (seconds, p50 / p95 of {mig['alembic_s']['runs']} runs unless "
        f"noted; ratio of p50s to the baseline in the same run)",
        "",
        "| figure | p50 / p95 s | baseline | baseline p50 s | ratio |",
        "|---|---:|---|---:|---:|",
        f"| 3. `alembic upgrade head`, empty database | {_f(mig['alembic_s']['p50'])} / "
        f"{_f(mig['alembic_s']['p95'])} | `psql -f` of the rendered SQL | "
        f"{_f(mig['psql_s']['p50'])} | {mig['ratio_p50']:.1f} |",
        f"| 4. test fixture: clone the migrated template + drop "
        f"({cl['clone_and_drop_s']['runs']} runs) | {_f(cl['clone_and_drop_s']['p50'], 3)}"
        f" / {_f(cl['clone_and_drop_s']['p95'], 3)} | `alembic upgrade head` (item 3) | "
        f"{_f(cl['migrate_p50_s'])} | {cl['ratio_p50']:.3f} |",
    ]
    for name in ("drift", "verify"):
        entry = cmd[name]
        if entry == "not available":
            out.append(f"| 5. `substrate {name}`, migrated database | not available | | | |")
            continue
        out.append(
            f"| 5. `substrate {name}`, migrated database (exit {entry['exit_code']}) | "
            f"{_f(entry['seconds']['p50'])} / {_f(entry['seconds']['p95'])} | "
            f"`substrate --help` | {_f(cmd['baseline_s']['p50'])} | {entry['ratio_p50']:.1f} |"
        )
    out += ["", "How to read: a ratio is how many times its baseline the figure takes."]
    return out


def upgrade(u: dict) -> list[str]:
    led = u["ledger"]
    out = [
        "",
        f"**6. Upgrade stall** (a ledger of {led['rows']:,} rows at {u['start']}; during each "
        f"step {u['clients']} pgbench clients (default protocol) keep calling the logger "
        f"(`{u['logger_call']}`); latencies of the calls that overlap `alembic upgrade <step>`; "
        f"before = the {u['warmup_s']} s before it)",
        "",
        "| step | upgrade s | calls during | p50 ms | p99 ms | max ms | calls > 1 s | failed "
        "calls | longest pause s | p99 / max ms before |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for step in u["steps"]:
        d, b = step["during"], step["before"]
        failed = ", ".join(f"{n} {kind}" for kind, n in d.get("failed", {}).items()) or "none"
        if step["clients_aborted"]:
            failed += f"; {len(step['clients_aborted'])} client(s) aborted"
        if step["error"]:
            failed += f"; UPGRADE FAILED: {step['error'][:120]}"
        out.append(
            f"| {step['revision']} | {_f(step['upgrade_seconds'], 1)} | {d.get('calls', 0):,} | "
            f"{_f(d.get('p50_ms', 0))} | {_f(d.get('p99_ms', 0))} | {_f(d.get('max_ms', 0), 0)} "
            f"| {d.get('over_1s', 0)} | {failed} | {_f(step['longest_pause_s'], 2)} | "
            f"{_f(b.get('p99_ms', 0))} / {_f(b.get('max_ms', 0), 0)} |"
        )
    out += ["", f"How to read: the target is that no logger call stalls more than "
            f"{u['stall_threshold_s']:.0f} s (max ms < 1,000, no call > 1 s) and none fails; "
            f"a deadlock failure is a call the upgrade's locks killed (it is not retried); "
            f"longest pause = the longest time no call completed during the step."]
    for step in u["steps"]:
        for wait in step.get("lock_waits", [])[:2]:
            out.append(f"- {step['revision']}: loggers waited up to {wait['longest_s']:.2f} s "
                       f"for {wait['mode']} on {wait['waits_for']}, held by `{wait['blocker']}`")
        slowest = (step.get("slowest") or [None])[0]
        if slowest and slowest["latency_ms"] > 100:
            began = slowest["started_after_upgrade_began_s"]
            ended = slowest["ended_after_upgrade_ended_s"]
            out.append(f"- {step['revision']}: slowest call {slowest['latency_ms']:,.0f} ms "
                       f"({slowest['status']}), started {began:.2f} s into the upgrade, ended "
                       f"{ended:+.2f} s from its end")
        if step.get("logger_errors"):
            out.append(f"- {step['revision']}: logger error: `{step['logger_errors'][0][:200]}`")
    after = u.get("seal_check_after")
    if after:
        found = "nothing" if after["ok"] else "FINDINGS"
        out.append(f"After the last step the seal check found {found} ({after['summary']}); "
                   f"the largest run link holds {after['largest_link_rows']:,} rows.")
    return out


def seals(s: dict) -> list[str]:
    out = [
        "",
        f"**7. Seal verification** (`substrate.review.verify.seals.section`, "
        f"{s['sizes'][0]['workers'] if s['sizes'] else 2} workers, p50 / max of {s['runs']} "
        f"runs, on a head ledger sealed in links of 1,024 ids as the folds seal it; EXPLAIN = "
        f"`EXPLAIN (ANALYZE, BUFFERS)` of the section's range query over a sample of links; "
        f"`substrate verify` end to end, once)",
        "",
        "| ledger rows | run links | seconds p50 / max | sealed rows/s | ms per link | "
        "EXPLAIN: ms per link, us per row | `substrate verify` s (exit; seals section?) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in s["sizes"]:
        ex, cli = entry["explain"], entry["substrate_verify"]
        out.append(
            f"| {entry['rows']:,} | {entry['run_links']:,} | {_f(entry['seconds']['p50'], 1)} / "
            f"{_f(entry['seconds']['max'], 1)} | {_f(entry['rows_per_second_p50'], 0)} | "
            f"{_f(entry['ms_per_link_p50'])} | {_f(ex['ms_per_link'])}, {_f(ex['us_per_row'])} | "
            f"{_f(cli['seconds'], 1)} (exit {cli['exit_code']}; "
            f"{'yes' if cli['has_seals_section'] else 'no'}) |"
        )
    for entry in s["sizes"]:
        cli = entry["substrate_verify"]
        if cli["exit_code"] != 0:
            out.append(f"- `substrate verify` at {entry['rows']:,} rows exited "
                       f"{cli['exit_code']}: {cli.get('not_ok') or cli.get('stderr')}")
    out += ["", f"How to read: the target is a full check of {s['goal_rows']:,} rows within "
            f"{s['goal_seconds']} s; rows/s counts sealed rows recomputed (the 1,500 past the "
            f"frontier are only counted)."]
    return out


def readers(r: dict) -> list[str]:
    head, old = list(r["readers"])
    out = [
        "",
        f"**8. Gate reader with a live window** (`{r['readers'][head]}` at {r['revision']} "
        f"against the reader as released before 0011, `{r['readers'][old]}`, created beside it "
        f"from its v1 file; client: {r['calls']:,} calls of each, alternating; server: "
        f"{r['loop']:,} calls in one statement, median of {r['runs']} runs)",
        "",
        "| reader | client p50 / p95 ms | server us per call |",
        "|---|---:|---:|",
    ]
    for name in r["readers"]:
        c, srv = r["client_ms"][name], r["server_us"][name]
        out.append(f"| {name} | {_f(c['p50'], 3)} / {_f(c['p95'], 3)} | "
                   f"{_f(srv['per_call_p50'], 1)} |")
    out += ["", f"How to read: head / v1 = {r['client_ratio_p50']:.2f} (client p50), "
            f"{r['client_ratio_p95']:.2f} (client p95), {r['server_ratio_p50']:.2f} (server): "
            f"what reading the window costs over reading the value alone."]
    return out


def runtime(r: dict) -> list[str]:
    out = [
        "",
        f"**9. Runtime apply** (`OperatorRuntime.apply('{r['command']}', {{}}, ...)` as a "
        f"dot_iu_runtime login at {r['revision']}, {r['calls']:,} calls of each, rotating; "
        f"ratio = p50 over the p50 of `{r['baseline']}`: the target function and the same "
        f"'applied' row through the logger, BEGIN ... COMMIT on a kept connection)",
        "",
        "| call | p50 / p95 ms | ratio | ratio to one psql process |",
        "|---|---:|---:|---:|",
    ]
    for name, ms in r["ms"].items():
        psql = f"{ms['psql_ratio_p50']:.2f}" if "psql_ratio_p50" in ms else ""
        out.append(f"| {name} | {_f(ms['p50'], 2)} / {_f(ms['p95'], 2)} | "
                   f"{ms['ratio_p50']:.2f} | {psql} |")
    out.append("")
    for kind, phases in r["phases_ms"].items():
        parts = ", ".join(f"{name} {_f(ms['p50'], 2)}" for name, ms in phases.items())
        out.append(f"- {kind}, by transaction (p50 ms): {parts}.")
    out += ["", f"How to read: the aim is a psycopg_executor apply at most {r['goal_ratio']} "
            "times the bare transaction. A runtime holding its lease makes one transaction per "
            "apply; so does a kept runtime, whose apply takes the lease and gives it back in "
            "that transaction; a new runtime reads the catalog row first (two). The psql "
            "executor pays a psql process per transaction: its last column compares it with "
            "the bare transaction through one such process."]
    return out


SECTIONS = (
    ("throughput", throughput),
    ("logger_parts", logger_parts),
    ("views", views),
    ("tooling", tooling),
    ("upgrade", upgrade),
    ("seals", seals),
    ("readers", readers),
    ("runtime", runtime),
)


def render(results: dict) -> str:
    out = machine(results)
    for key, section in SECTIONS:
        if key in results:
            out += section(results[key])
    return "\n".join(out) + "\n"
