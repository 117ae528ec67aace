"""Utility: held-out accuracy of S3T, a full fine-tune and SISA, as erasures pile up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import figure, fmt, md_table, pct, save, times

ORDER = 20
TITLE = "2. Utility: accuracy at zero deletions and as erasures accumulate"
RESULTS = ("utility",)


def summary(results: dict[str, Any]) -> list[str]:
    data = results["utility"]
    u = data["utility"]
    best = max(u["s3t"], key=lambda c: c["accuracy"])
    last = data["retention"]["checkpoints"][-1]
    return [
        f"**Utility** (MiniLM, held-out tickets): full fine-tune "
        f"{pct(u['full_finetune']['accuracy'])}; best S3T ensemble "
        f"{pct(best['accuracy'])} (m={best['m']}, L={best['L']}); after "
        f"{last['erased_subjects']} erased subjects S3T with scheduled retraining keeps "
        f"{pct(last[_retrain_key(last)]['accuracy'])}, "
        f"SISA {pct(last['sisa_retrain']['accuracy'])}."
    ]


def _retrain_key(row: dict[str, Any]) -> str:
    """The S3T retraining policy governance runs (suffix; results before it: full)."""
    return "s3t_retrain_suffix" if "s3t_retrain_suffix" in row else "s3t_retrain"


def _settings(data: dict[str, Any]) -> str:
    s = data["settings"]
    note = (
        " **This is a `--quick` smoke run on a tiny dataset: its numbers mean nothing.**"
        if s["profile"] == "quick"
        else ""
    )
    return (
        f"MiniLM (6 blocks, LoRA r={s['lora']['rank']} on query/value), sample tickets: "
        f"{fmt(s['train_messages'])} training messages from {fmt(s['train_subjects'])} subjects; "
        f"accuracy on the held-out test split ({fmt(s['test_messages'])} messages by other "
        f"subjects, with phrasings that never occur in training). Every model: AdamW, learning "
        f"rate {s['learning_rate']:g}, {s['epochs']} epoch(s), batch {s['batch_size']}, padding "
        f"to the longest in the batch, {s['threads']} torch thread(s). "
        f"Command: `{data.get('command', 'python bench/bench_utility.py')}`, "
        f"{fmt(data['wall']['total_s'], 0)} s.{note}"
    )


def _zero(data: dict[str, Any]) -> str:
    u = data["utility"]
    full = u["full_finetune"]["accuracy"]
    sisa = {s["m"]: s for s in u["sisa"]}
    rows: list[list[Any]] = [
        ["majority class (floor)", "–", pct(u["majority_class"]["accuracy"]), "–", "–"],
        [
            "one LoRA fine-tune on all data",
            "1",
            pct(full),
            "–",
            fmt(u["full_finetune"]["cost"]["example_epochs"]),
        ],
    ]
    for c in u["s3t"]:
        s = sisa.get(c["m"])
        rows.append(
            [
                f"S3T m={c['m']}, L={c['L']}",
                str(c["m"]),
                pct(c["accuracy"]),
                _signed(c["accuracy"] - full),
                "–",
            ]
        )
        if s is not None and s["m"] > 1 and not any(r[0] == f"SISA m={s['m']}" for r in rows):
            rows.append(
                [
                    f"SISA m={s['m']}",
                    str(s["m"]),
                    pct(s["accuracy"]),
                    _signed(s["accuracy"] - full),
                    fmt(s["cost"]["example_epochs"]),
                ]
            )
    table = md_table(
        ["model", "shards m", "held-out accuracy", "vs full fine-tune", "example-epochs"], rows
    )
    worst = min(u["s3t"], key=lambda c: c["accuracy"])
    best = max(u["s3t"], key=lambda c: c["accuracy"])
    gaps = [
        (c, sisa[c["m"]]["accuracy"] - c["accuracy"])
        for c in u["s3t"]
        if c["m"] in sisa and c["m"] > 1
    ]
    by_m = sorted(u["s3t"], key=lambda c: (c["m"], c["L"]))
    text = [
        "At zero deletions every shard serves its first sequence at full depth, so the "
        "budget B changes nothing here; the configurations vary m and L. S3T's example-epochs "
        "are in the training-cost section.",
        table,
        f"S3T ranges from {pct(worst['accuracy'])} (m={worst['m']}, L={worst['L']}) to "
        f"{pct(best['accuracy'])} (m={best['m']}, L={best['L']}), against "
        f"{pct(full)} for one model fine-tuned on everything. "
        + (
            "S3T is below the full fine-tune in every configuration. Why: each shard model "
            "sees only 1/m of the data; within a shard, the deepest stage trains a single "
            "layer group (plus the head) on all of the shard's records, while the groups "
            "above it were fitted on fewer slices and stay frozen afterwards; and with a "
            "fixed number of epochs the early stages take very few optimiser steps."
            if best["accuracy"] < full
            else "The best S3T configuration matches or beats the full fine-tune here."
        ),
    ]
    if by_m[0]["m"] == 1:
        one = by_m[0]
        text.append(
            f"With m=1 (no sharding, only slicing) S3T reaches {pct(one['accuracy'])}, "
            f"{_signed(one['accuracy'] - full)} against the full fine-tune on the same "
            "records: that difference is the effect of slice-wise training alone."
        )
    if gaps:
        parts = ", ".join(f"m={c['m']}, L={c['L']}: {_signed(g)}" for c, g in gaps)
        text.append(
            f"SISA minus S3T on the same shards ({parts}): "
            + (
                "SISA, which trains every group of each shard model at once, is more accurate."
                if all(g > 0 for _, g in gaps)
                else "S3T is more accurate than SISA on the same shards in every configuration "
                "measured. A likely reason, not isolated here: with the same epoch count a "
                "served S3T prefix has made (L+1)/2 passes over its shard across its stages, "
                "SISA's shard model one."
                if all(g < 0 for _, g in gaps)
                else "the two are within a few points; neither dominates."
                if all(abs(g) < 0.03 for _, g in gaps)
                else "mixed: S3T is ahead in some configurations, SISA in others."
            )
        )
    return "\n\n".join(text)


def _retention(data: dict[str, Any], plots: Path) -> str:
    r = data["retention"]
    rows_in = r["checkpoints"]
    full = data["utility"]["full_finetune"]["accuracy"]
    x = [c["erased_subjects"] for c in rows_in]

    def a(c: dict[str, Any], k: str) -> str:
        v = c[k]["accuracy"]
        if v is None:
            return "not servable"
        return pct(v)

    suffix = "s3t_retrain_suffix" in rows_in[0]
    table = md_table(
        [
            "erased subjects",
            "S3T deactivation only",
            "serving shards",
            "S3T + retraining, full re-partition",
            *(["S3T + retraining, suffix"] if suffix else []),
            "shards retrained",
            "SISA retraining",
            "shards retrained",
        ],
        [
            [
                c["erased_subjects"],
                a(c, "s3t_deactivation"),
                f"{c['s3t_deactivation']['serving_shards']} / {r['m']}",
                a(c, "s3t_retrain"),
                *([a(c, "s3t_retrain_suffix")] if suffix else []),
                str(len(c["s3t_retrain"]["retrained_shards"]))
                + (f" / {len(c['s3t_retrain_suffix']['retrained_shards'])}" if suffix else ""),
                a(c, "sisa_retrain"),
                str(len(c["sisa_retrain"]["retrained_shards"])),
            ]
            for c in rows_in
        ],
    )
    compute = md_table(
        [
            "erased subjects",
            "S3T deactivation (s / ex-ep)",
            "S3T + retraining, full re-partition",
            *(["S3T + retraining, suffix"] if suffix else []),
            "SISA, retrained per checkpoint (measured)",
            "SISA, after every erasure (estimate)",
            "full fine-tune after every erasure (estimate)",
        ],
        [
            [
                c["erased_subjects"],
                _cost(c["s3t_deactivation"]["cost"]),
                _cost(c["s3t_retrain"]["cost"]),
                *([_cost(c["s3t_retrain_suffix"]["cost"])] if suffix else []),
                _cost(c["sisa_retrain"]["cost"]),
                _cost(c["sisa_retrain"]["cost_if_retrained_after_every_erasure"]),
                _cost(c["full_retrain_after_every_erasure"]),
            ]
            for c in rows_in
        ],
    )

    fig, ax = figure(6.4, 4.0)
    deact = [c["s3t_deactivation"]["accuracy"] for c in rows_in]
    served = [(xi, v) for xi, v in zip(x, deact, strict=True) if v is not None]
    if served:
        ax.plot(*zip(*served, strict=True), "o-", color="C0", label="S3T, deactivation only")
    dead = [xi for xi, v in zip(x, deact, strict=True) if v is None]
    if dead:
        ax.plot(dead, [0.02] * len(dead), "x", color="C0", ms=9, label="S3T: not servable")
        ax.annotate(
            "not servable",
            (dead[0], 0.02),
            xytext=(-4, 8),
            textcoords="offset points",
            ha="right",
            fontsize=8,
            color="C0",
        )
    ax.plot(
        x,
        [c["s3t_retrain"]["accuracy"] for c in rows_in],
        "s-",
        color="C2",
        label=f"S3T + retraining, full (depth < {r['threshold']})",
    )
    if suffix:
        ax.plot(
            x,
            [c["s3t_retrain_suffix"]["accuracy"] for c in rows_in],
            "D--",
            color="C1",
            label=f"S3T + retraining, suffix (depth < {r['threshold']})",
        )
    ax.plot(
        x, [c["sisa_retrain"]["accuracy"] for c in rows_in], "^-", color="C3", label="SISA retrain"
    )
    ax.axhline(full, color="k", ls="--", lw=1, label=f"full fine-tune, no erasures ({pct(full)})")
    ax.set_xlabel("erased subjects (seeded random order)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"Accuracy as erasures accumulate, m={r['m']}, L={r['L']}, B={r['B']}")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="lower left")
    acc_link = save(fig, plots, "utility_retention")

    fig, ax = figure(6.4, 4.0)
    series = [
        ("S3T, deactivation only", "C0", "o-", lambda c: c["s3t_deactivation"]["cost"]),
        ("S3T + retraining, full", "C2", "s-", lambda c: c["s3t_retrain"]["cost"]),
        *(
            [("S3T + retraining, suffix", "C1", "D--", lambda c: c["s3t_retrain_suffix"]["cost"])]
            if suffix
            else []
        ),
        ("SISA, retrained per checkpoint", "C3", "^-", lambda c: c["sisa_retrain"]["cost"]),
        (
            "SISA, after every erasure (est.)",
            "C3",
            ":",
            lambda c: c["sisa_retrain"]["cost_if_retrained_after_every_erasure"],
        ),
        (
            "full fine-tune after every erasure (est.)",
            "0.4",
            "--",
            lambda c: c["full_retrain_after_every_erasure"],
        ),
    ]
    for label, colour, style, get in series:
        ax.plot(x, [get(c)["example_epochs"] for c in rows_in], style, color=colour, label=label)
    ax.set_xlabel("erased subjects")
    ax.set_ylabel("cumulative training example-epochs")
    ax.set_title("Training compute spent, initial training included")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8, loc="upper left")
    cost_link = save(fig, plots, "utility_retention_compute")

    last = rows_in[-1]
    first_dead = next(
        (c["erased_subjects"] for c in rows_in if c["s3t_deactivation"]["accuracy"] is None), None
    )
    key = _retrain_key(last)
    s3t_c, sisa_c = last[key]["cost"], last["sisa_retrain"]["cost"]
    text = [
        f"Model: m={r['m']}, L={r['L']}, B={r['B']} cyclic (sequences "
        f"{', '.join(str(tuple(s)) for s in r['sequences'])}), records per cell "
        f"{r['cells']}. {r['subjects']} training subjects are erased in a seeded random order; "
        "a subject's records sit in one (shard, slice) cell. At each checkpoint: **S3T "
        "deactivation only** serves each shard's longest clean prefix (a shard with none drops "
        "out); **S3T + scheduled retraining** first retrains every shard whose serving depth "
        f"fell below {r['threshold']} (governance's default threshold) on its remaining "
        "records, either re-partitioned into fresh slices with every stage trained anew "
        '(**full**, `model_retrain(mode="full")`) or keeping its slices and every clean '
        "stage and training only the stages whose prefix holds a dirty slice (**suffix**, "
        "`model_retrain`'s default; the table's shards-retrained column reads full / suffix); "
        "**SISA** retrains "
        "every shard an erasure hit, from scratch, on its remaining records. Retraining SISA "
        "once per checkpoint gives exactly the model that retraining after each erasure would "
        "(seeded, from scratch, on the same remaining records), so its accuracy is exact; the "
        "compute of retraining after every erasure is estimated as (erasures that hit the "
        "shard) × the measured retrain. The full fine-tune line is the zero-deletion reference.",
        table,
        acc_link,
        compute,
        cost_link,
    ]
    findings = []
    if first_dead is not None:
        before = [
            c["s3t_deactivation"]["accuracy"]
            for c in rows_in
            if c["erased_subjects"] < first_dead and c["s3t_deactivation"]["accuracy"]
        ]
        trend = (
            f" Before that it went from {pct(before[0])} to {pct(before[-1])} as shards fell "
            "back to shallower prefixes or left the ensemble."
            if len(before) > 1
            else ""
        )
        findings.append(
            f"Without retraining S3T stops serving by {first_dead} erased subjects (expected "
            f"for uniform erasures: m·L·H(m·min(B, L)) = "
            f"{fmt(r['expected_erasures_until_not_servable'], 1)}).{trend}"
        )
    else:
        findings.append(
            f"Deactivation alone kept S3T servable through {last['erased_subjects']} erased "
            f"subjects, at {a(last, 's3t_deactivation')}."
        )
    diff = last[key]["accuracy"] - last["sisa_retrain"]["accuracy"]
    findings.append(
        f"With retraining, after {last['erased_subjects']} erasures S3T serves "
        f"{a(last, key)} and SISA {a(last, 'sisa_retrain')} "
        f"({_signed(diff)} for S3T)." + f" S3T spent {fmt(s3t_c['example_epochs'])} example-epochs "
        f"({fmt(s3t_c['seconds'], 0)} s) in total, SISA {fmt(sisa_c['example_epochs'])} "
        f"({fmt(sisa_c['seconds'], 0)} s) measured: "
        f"{times(s3t_c['example_epochs'] / sisa_c['example_epochs'])} as much for S3T"
        + (
            ". S3T loses on compute here: a shard retrain costs B·(L+1)/2 times a SISA shard "
            "retrain, and its initial training is that much larger too, which deferring "
            "retraining to dead shards does not make up."
            if s3t_c["example_epochs"] > sisa_c["example_epochs"]
            else ", because retraining is deferred until a shard cannot serve."
        )
        + " What S3T buys is elsewhere: each erasure is honoured at once with no gradient "
        "step (see the deletion-cost section), whereas SISA must retrain a shard for every "
        "erasure to stay exact: "
        f"{fmt(last['sisa_retrain']['cost_if_retrained_after_every_erasure']['example_epochs'])} "
        "example-epochs by this point if it did so."
    )
    text.append(" ".join(findings))
    if "accounting" in r:
        text += _accounting(data)
    return "\n\n".join(text)


def _accounting(data: dict[str, Any]) -> list[str]:
    """The exact compute of both retraining modes, from the plans (no training)."""
    r, summary = data["retention"], data.get("summary", {})
    own = r["accounting"]["bench"]
    measured = r["checkpoints"][-1]
    check = all(
        own[mode]["s3t_initial"] + own[mode]["s3t_retrain"]
        == measured[key]["cost"]["example_epochs"]
        for mode, key in (("full", "s3t_retrain"), ("suffix", "s3t_retrain_suffix"))
    )
    grid = md_table(
        [
            "m",
            "L",
            "B",
            "threshold",
            "mode",
            "vs SISA per checkpoint",
            "retraining only",
            "vs SISA after every erasure",
            "best order",
            "bench order",
        ],
        [
            [
                g["m"],
                g["L"],
                g["B"],
                g["threshold"],
                g["mode"],
                times(g["vs_sisa"]),
                times(g["vs_sisa_retraining_only"]),
                times(g["vs_sisa_every_erasure"]),
                times(g["vs_sisa_min"]),
                times(g["vs_sisa_bench_order"]),
            ]
            for g in r["accounting"]["grid"]
        ],
    )
    return [
        "**Compute of retraining, exactly.** Example-epochs follow from the stage plans and "
        "the records per slice alone (`retention_accounting` in the bench; it "
        + ("equals" if check else "**differs from**")
        + " the measured example-epochs of both modes above). Headline at the bench's own "
        f"order, suffix mode: S3T spent {times(summary.get('retrain_compute_vs_sisa'))} SISA's "
        "compute with SISA retraining per checkpoint (initial training included), "
        f"{times(summary.get('retrain_compute_vs_sisa_retraining_only'))} counting retraining "
        f"only, and {times(summary.get('retrain_compute_vs_sisa_every_erasure'))} SISA's exact "
        "cost of retraining the hit shard after every single erasure "
        f"({fmt(own['suffix']['sisa_retrain_every_erasure'])} example-epochs of retraining). "
        f"Below, the mean over {r['accounting']['orders']} erasure orders for other plans:",
        grid,
        f"The lowest ratio to SISA retrained per checkpoint over every plan and order above "
        f"is {times(min((g['vs_sisa_min'] for g in r['accounting']['grid']), default=None))}. "
        "Why: every sequence's last "
        "stage reads the whole shard and holds every slice, so any dirty slice makes all B "
        "of them dirty, and a shard retrain costs at least B shard-passes, suffix or not, "
        "against SISA's one; S3T's initial training costs B·(L+1)/2 shard-passes per shard "
        "(at most; shared prefixes less) against SISA's one. S3T can only spend less by "
        "retraining less often, i.e. by serving shallower prefixes for longer (threshold 1, "
        "B = 1), which costs accuracy. At L = 2 a shard dies (depth 0 < 1) only when both "
        "its slices are dirty, so every stage is dirty and suffix retraining saves nothing; "
        "the differences between the two modes there come from the erasure order meeting "
        "different cells after a re-partition. Suffix retraining saves stages where a "
        "retrain happens while early slices are still clean (threshold above 1, L ≥ 3).",
    ]


def _signed(fraction: float) -> str:
    """A difference of two accuracies in percentage points, with a real minus sign."""
    return f"{100 * fraction:+.1f} pt".replace("-", "−")


def _cost(c: dict[str, Any]) -> str:
    return f"{fmt(c['seconds'], 0)} s / {fmt(c['example_epochs'])}"


def render(results: dict[str, Any], plots: Path) -> str:
    data = results["utility"]
    return "\n\n".join(
        [
            _settings(data),
            "### Zero deletions",
            _zero(data),
            "### Retention as erasures accumulate",
            _retention(data, plots),
        ]
    )
