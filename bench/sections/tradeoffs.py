"""Where S3T loses, and why: the costs behind the cheap erasure, from every results file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import fmt, pct, times

ORDER = 5
TITLE = "Where S3T loses"
RESULTS = ("utility", "capacity", "engine", "erasure")


def render(results: dict[str, Any], plots: Path) -> str:
    points = [
        _accuracy(results["utility"]),
        _training(results["utility"], results["erasure"]),
        _retraining(results["utility"]),
        _serving(results["engine"]),
        _capacity(results["capacity"]),
        _bms(results["capacity"]),
    ]
    intro = (
        "Lethe's erasure is fast and exact because S3T pays elsewhere. Each point below is "
        "computed from the results files of this run; the sections after it give the detail."
    )
    return intro + "\n\n" + "\n".join(f"- {point}" for point in points if point) + "\n"


def _accuracy(data: dict[str, Any]) -> str:
    u = data["utility"]
    full = u["full_finetune"]["accuracy"]
    best = max(u["s3t"], key=lambda c: c["accuracy"])
    worst = min(u["s3t"], key=lambda c: c["accuracy"])
    if best["accuracy"] >= full:
        return (
            f"**Accuracy**: no loss at zero deletions here — the best S3T ensemble "
            f"({pct(best['accuracy'])}, m={best['m']}, L={best['L']}) matches one full "
            f"fine-tune ({pct(full)}); the weakest is {pct(worst['accuracy'])}."
        )
    sisa = {s["m"]: s["accuracy"] for s in u["sisa"] if s["m"] > 1}
    pairs = [(c, sisa[c["m"]]) for c in u["s3t"] if c["m"] in sisa]
    versus = ""
    if pairs:
        ahead = sum(c["accuracy"] >= a for c, a in pairs)
        listed = ", ".join(f"m={c['m']}: {pct(c['accuracy'])} vs {pct(a)}" for c, a in pairs)
        versus = (
            f" Against SISA with the same shards S3T is ahead in {ahead} of {len(pairs)} "
            f"configurations ({listed}): the loss is sharding's, which SISA shares."
        )
    return (
        f"**Accuracy**: at zero deletions every S3T ensemble is below one LoRA fine-tune on "
        f"all data ({pct(full)}): from {pct(best['accuracy'])} (m={best['m']}, L={best['L']}) "
        f"down to {pct(worst['accuracy'])} (m={worst['m']}, L={worst['L']}). Each shard sees "
        "1/m of the data, and within a shard the top layer groups are trained on the first "
        f"slices only and then frozen (section 2).{versus}"
    )


def _training(utility: dict[str, Any], erasure: dict[str, Any]) -> str:
    t = utility["training"]
    runs = t["utility_runs"]
    full = runs[0]
    s3t = [r for r in runs if r["model"].startswith("S3T")]
    heaviest = max(s3t, key=lambda r: r["example_epochs"])
    trained = erasure["trained_model"]
    return (
        f"**Training compute**: S3T trains every stage of every sequence, and a stage at "
        f"depth d reads d of the shard's L slices: about B·(L+1)/2 passes over the data "
        f"where SISA or one fine-tune makes one. Measured: {heaviest['model']} took "
        f"{times(heaviest['example_epochs'] / full['example_epochs'], 1)} the example-epochs "
        f"and {times(heaviest['seconds'] / full['seconds'], 1)} the time of one full "
        f"fine-tune on the same data; the full-budget model (m=1, L={t['L']}, B={t['B']}) "
        f"{times(t['shared_prefixes']['seconds'] / t['full_finetune']['seconds'], 1)} even "
        f"with shared prefixes; the deletion-cost model (m=4, L=4, B=4) "
        f"{times(trained['training']['total_s'] / trained['baselines']['full']['total_s'], 1)} "
        "(sections 3 and 4). Sharing prefixes saves little: the deepest stages read the most "
        "data and are never shared."
    )


def _retraining(data: dict[str, Any]) -> str:
    last = data["retention"]["checkpoints"][-1]
    key = "s3t_retrain_suffix" if "s3t_retrain_suffix" in last else "s3t_retrain"
    s3t = last[key]["cost"]["example_epochs"]
    sisa = last["sisa_retrain"]["cost"]["example_epochs"]
    accounting = data["retention"].get("accounting")
    if accounting:  # exact: the hit shard retrained on its remaining records every time
        sisa0 = data["retention"]["initial"]["sisa"]["example_epochs"]
        every = sisa0 + accounting["bench"]["suffix"]["sisa_retrain_every_erasure"]
        every_note = "exact"
    else:
        every = last["sisa_retrain"]["cost_if_retrained_after_every_erasure"]["example_epochs"]
        every_note = "estimated"
    ratio = s3t / sisa
    if ratio > 1:
        tail = (
            "S3T's advantage is latency (the erasure takes effect and is certified in "
            "milliseconds; retraining waits for the schedule), not total compute: every "
            "retrain of a shard re-trains all B full-depth stages (each reads the whole shard), "
            "so retraining only what was lost cannot bring it under SISA's one model per "
            "shard (section 2 gives the exact accounting over other plans)."
        )
    else:
        tail = "Here S3T also spent less in total (section 2)."
    mode = (
        "suffix retraining (only stages whose prefix lost a record)"
        if key.endswith("suffix")
        else "scheduled retraining"
    )
    return (
        f"**Total compute under erasures**: after {last['erased_subjects']} erased subjects, "
        f"S3T with {mode} had spent {fmt(s3t)} example-epochs of training "
        f"(initial training included), {times(ratio)} SISA's {fmt(sisa)} "
        f"with SISA retraining each hit shard once per checkpoint, and "
        f"{times(s3t / every)} SISA's {every_note} {fmt(every)} had it retrained after every "
        f"erasure. {tail}"
    )


def _serving(engine: dict[str, Any]) -> str:
    r = engine["ratios"]
    return (
        f"**Inference**: an ensemble runs one forward pass per serving shard: "
        f"{times(r['ensemble_over_base_batch32'])} a single model's latency at batch 32 with "
        f"{engine['settings']['shards']} shards (SISA pays the same; one fine-tuned model "
        "does not) (section 6)."
    )


def _capacity(data: dict[str, Any]) -> str:
    live = data["live"]
    first = live["live"]["first_shard_death"]["mean"]
    last = live["live"]["capacity"]["mean"]
    return (
        f"**Deactivation alone runs out**: with no retraining the live m={live['shards']}, "
        f"L={live['slices']}, B={live['budget']} model lost its first shard after "
        f"{fmt(first, 1)} erasures on average and could not serve at all after "
        f"{fmt(last, 1)}; capacity grows only logarithmically in B (section 1). Each lost "
        "shard or stage also lowers accuracy until the scheduled retraining (section 2)."
    )


def _bms(data: dict[str, Any]) -> str:
    worst: tuple[float, str, str, int] | None = None
    for name, prior in data["policies"]["priors"].items():
        for threshold, rows in prior["thresholds"].items():
            if threshold == "1":
                continue
            for row in rows:
                r = row["bms_over_cyclic"]
                if r is not None and (worst is None or r < worst[0]):
                    worst = (r, name, threshold, row["budget"])
    if worst is None or worst[0] >= 1:
        return ""
    r, name, threshold, budget = worst
    label = data["policies"]["priors"][name]["label"].split(":")[0]
    return (
        f"**BMS is not always better**: it wins at threshold 1 under skewed priors, but when "
        f"a shard needs depth ≥ 2 to serve it can lose to cyclic — worst {times(r)} "
        f"(prior {label}, threshold {threshold}, B={budget}) — because it pairs mirrored "
        "sequences that die together (section 1)."
    )
