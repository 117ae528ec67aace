"""Accuracy kept by S3T (serving rule, rsLoRA, schedule, epochs per stage, serving depth)
and the membership-inference evidence of an erasure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import fmt, md_table, pct

ORDER = 25
TITLE = "2b. Accuracy kept, and membership inference before and after an erasure"
RESULTS = ("accuracy",)

_VARIANTS = {
    "legacy": "legacy settings (constant lr, LoRA scale α/r, every stage the same epochs)",
    "rslora": "rsLoRA (scale α/√r)",
    "warmup_decay": "warm-up (10 % of a stage's steps) + linear decay",
    "scaled_epochs": "epochs per stage scaled to its data (⌈E·L/i⌉)",
    "chosen": "the gaining changes combined",
}


def summary(results: dict[str, Any]) -> list[str]:
    s = results["accuracy"]["summary"]
    mia = results["accuracy"]["mia"]["after_minus_never_trained"]
    return [
        f"**Accuracy kept** (MiniLM, S3T m=2 L=3): {pct(s['accuracy_s3t_m2'])} with the chosen "
        f"defaults (legacy {pct(s['accuracy_s3t_m2_legacy'])}) against one full LoRA fine-tune "
        f"{pct(s['accuracy_full'])} at the same epochs setting"
        f"{_matched(s)}. **Membership inference** (loss AUC, erased records vs "
        f"held-out): {fmt(s['mia_auc_before'], 3)} before the erasure, "
        f"{fmt(s['mia_auc_after'], 3)} after, {fmt(s['mia_auc_never_trained'], 3)} for a model "
        f"never trained on them (after − never {fmt(mia['auc'], 3)} ± {fmt(mia['stderr'], 3)})"
        f"{_same_serving_summary(s)}."
    ]


def _same_serving_summary(s: dict[str, Any]) -> str:
    if s.get("mia_auc_never_trained_same_serving") is None:
        return ""
    return (
        f"; that same training served as the unlearned model serves scores "
        f"{fmt(s['mia_auc_never_trained_same_serving'], 3)}, the unlearned model's own figure"
    )


def _matched(s: dict[str, Any]) -> str:
    """The fine-tune given S3T's example-epochs, where the run measured it."""
    if s.get("accuracy_full_matched_compute") is None:
        return ""
    return (
        f", and {pct(s['accuracy_full_matched_compute'])} when given as many example-epochs "
        "as the S3T model (S3T trails by "
        f"{100 * (s['accuracy_full_matched_compute'] - s['accuracy_s3t_m2']):.1f} points there)"
    )


def _auc_row(name: str, row: dict[str, Any]) -> list[Any]:
    return [
        name,
        fmt(row["auc"], 3),
        fmt(row["stderr"], 3),
        f"{fmt(row['ci95'][0], 3)} – {fmt(row['ci95'][1], 3)}",
        fmt(row.get("mean_loss_erased"), 3),
        fmt(row.get("mean_loss_heldout"), 3),
    ]


def render(results: dict[str, Any], plots: Path) -> str:
    data = results["accuracy"]
    s, st, choice, full = data["summary"], data["settings"], data["choice"], data["full_finetune"]
    note = (
        " **This is a `--quick` smoke run on a tiny dataset: its numbers mean nothing.**"
        if st["profile"] == "quick"
        else ""
    )
    variants = md_table(
        ["S3T m=2 L=3 variant", "mean of probabilities", "softmax of mean logits",
         "example-epochs", "train s"],
        [[_VARIANTS.get(name, name), pct(v["accuracy"]["probs"]), pct(v["accuracy"]["logits"]),
          v["cost"]["example_epochs"], fmt(v["cost"]["seconds"], 0)]
         for name, v in data["variants"].items()]
        + [[f"{_VARIANTS.get(name, name)} (earlier run†)", pct(v["accuracy"]["probs"]),
            pct(v["accuracy"]["logits"]), v["cost"]["example_epochs"],
            fmt(v["cost"]["seconds"], 0)]
           for name, v in (data.get("earlier_variants") or {}).get("variants", {}).items()
           if name not in data["variants"]],
    )  # fmt: skip
    earlier = data.get("earlier_variants")
    dagger = f"\n\n† {earlier['source']}." if earlier else ""
    full_rows = [
        [
            "legacy settings",
            pct(full["legacy"]["accuracy"]),
            full["legacy"]["cost"]["example_epochs"],
        ]
    ]
    if "same_as" not in full["chosen"]:
        full_rows.append(
            [
                "the chosen settings (one stage: epochs not scaled)",
                pct(full["chosen"]["accuracy"]),
                full["chosen"]["cost"]["example_epochs"],
            ]
        )
    if full.get("matched_compute"):
        m = full["matched_compute"]
        full_rows.append(
            [
                f"{m['epochs']} epochs (the chosen S3T model's example-epochs)",
                pct(m["accuracy"]),
                m["cost"]["example_epochs"],
            ]
        )
    baseline = md_table(["one LoRA fine-tune on all data", "accuracy", "example-epochs"], full_rows)
    depths = md_table(
        ["minimum serving depth d", "accuracy, every shard at depth d",
         "expected erasures per shard before depth < d (B=3 cyclic)"],
        [[r["depth"], pct(r["accuracy"]), fmt(r["expected_deletions_per_shard"], 2)]
         for r in data["depths"]],
    )  # fmt: skip
    mia = data["mia"]
    aucs = md_table(
        ["model", "AUC", "bootstrap stderr", "95 % interval", "mean loss, erased",
         "mean loss, held-out"],
        [_auc_row("(a) before the erasure", mia["before"]),
         _auc_row("(b) after it (clean prefixes served)", mia["after"]),
         _auc_row("(c) trained without the erased subjects", mia["never_trained"]),
         *_same_serving_rows(mia),
         _auc_row("(b) − (c), paired", mia["after_minus_never_trained"]),
         _auc_row("(a) − (c), paired", mia["before_minus_never_trained"])],
    )  # fmt: skip
    combined = ", ".join(choice["combined"]) or "none"
    gains = ", ".join(f"{k} {v * 100:+.1f} points" for k, v in choice["gains_over_legacy"].items())
    serving = ", ".join(f"shard {k}: prefix {tuple(v)}" for k, v in mia["serving_after"].items())
    return f"""\
Script: `bench/bench_accuracy.py` ({fmt(data['wall']['total_s'], 0)} s, {st['threads']} torch
thread). MiniLM, the sample tickets of section 2 ({fmt(st['train_messages'])} training
messages, {fmt(st['test_messages'])} held-out), AdamW at learning rate
{st['learning_rate']:g}, {st['epochs']} epoch, batch {st['batch_size']}; every variant and
the baseline train in the same run.{note}

{variants}{dagger}

Averaging is a serving rule, not part of any stage's recipe: both columns come from the
same stages. Chosen: **{choice['averaging']}** averaging ({'softmax of the mean logits' if
choice['averaging'] == 'logits' else 'mean of probabilities'}); gains over the legacy run
with that rule: {gains}; combined: {combined} → **{pct(s['accuracy_s3t_m2'])}**.

{baseline}

A minimum serving depth trades erasures left for accuracy (the capacity tables of section
1 count the same thing per model):

{depths}

**Membership inference.** {mia['erased_subjects']} subjects ({mia['erased_records']}
records, all in shard {mia['cell']['shard']} slice {mia['cell']['slice']}, the demo's
subject first) are erased; their records are scored against the {mia['heldout_records']}
held-out test records by per-record loss of the served model (higher loss = non-member),
as ROC AUC, with {st['bootstrap']} bootstrap resamples. After the erasure the model serves
{serving}. Model (c) is trained from scratch on the same partition without the erased
records, with the same seeds and settings; its stages that never read the erased slice are
bit-identical to (b)'s: **{fmt(mia['clean_prefix_stages_identical'])}**. The ensemble
served by `Ensemble` equals the bench's cached computation: {fmt(mia['ensemble_check_equal'])}.

{aucs}

Held-out accuracy: {pct(mia['accuracy_before'])} before, {pct(mia['accuracy_after'])} after,
{pct(mia['accuracy_never_trained'])} for (c). {_verdict(mia)}
"""  # fmt: skip


def _same_serving_rows(mia: dict[str, Any]) -> list[list[Any]]:
    """(d): (c)'s training served as (b) serves, in results that measured it."""
    if "never_trained_same_serving" not in mia:
        return []
    return [
        _auc_row("(d) (c)'s training, served as (b) serves", mia["never_trained_same_serving"]),
        _auc_row("(b) − (d), paired", mia["after_minus_never_trained_same_serving"]),
    ]


def _same_serving(mia: dict[str, Any]) -> str:
    if "never_trained_same_serving" not in mia:
        return ""
    equal = mia["same_serving_scores_equal"]
    return (
        f" Model (d) is (c)'s from-scratch training served the way (b) serves after the "
        f"erasure, evaluated from (c)'s own tensors: its scores equal (b)'s bit for bit: "
        f"**{fmt(equal)}**, so its AUC is (b)'s "
        f"({fmt(mia['never_trained_same_serving']['auc'], 3)})."
        + (
            " That is the prediction of exact unlearning, met exactly: what remains after "
            "the erasure is the model the same training gives without the erased records. "
            "(c) is another model of the same data: it also learns from the erased slice's "
            "other records, which (b) serves no stage of until its shard is retrained."
            if equal
            else " They should be equal; this run shows they are not."
        )
    )


def _verdict(mia: dict[str, Any]) -> str:
    """What the measured AUCs say, in words (two bootstrap stderrs as the bar)."""
    diff, never = mia["after_minus_never_trained"], mia["never_trained"]
    same = abs(diff["auc"]) <= 2 * diff["stderr"]
    shift = (
        f"The held-out records are written by other subjects with held-out phrasings, so even "
        f"a model that never saw the erased records tells the two sets apart (AUC of (c) "
        f"{fmt(never['auc'], 3)}): the test of the erasure is (b) against (c), not against 0.5. "
        if abs(never["auc"] - 0.5) > 2 * never["stderr"]
        else ""
    )
    verdict = (
        f"(b) and (c) agree within two bootstrap stderrs ({fmt(diff['auc'], 3)} ± "
        f"{fmt(diff['stderr'], 3)}), as exact unlearning predicts."
        if same
        else f"(b) and (c) differ by {fmt(diff['auc'], 3)} ± {fmt(diff['stderr'], 3)}, more "
        f"than two bootstrap stderrs; (b) serves a shorter prefix on the erased shard than (c), "
        f"without the rest of the erased slice."
    )
    return shift + verdict + _same_serving(mia)
