"""Serving overheads: prefix switching and ensemble prediction on MiniLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.sections.common import fmt, md_table, times

ORDER = 60
TITLE = "6. Serving: prefix switching and prediction"
RESULTS = ("engine", "predict")


def summary(results: dict[str, Any]) -> list[str]:
    engine = results["engine"]
    ratios = engine["ratios"]
    return [
        f"**Serving**: switching a shard's adapter prefix costs "
        f"{fmt(engine['prefix_switch']['hot']['p50_ms'], 2)} ms hot; an ensemble of "
        f"{engine['settings']['shards']} shards answers a batch of 32 in "
        f"{times(ratios['ensemble_over_base_batch32'])} one plain forward pass."
    ]


def render(results: dict[str, Any], plots: Path) -> str:
    engine, predict = results["engine"], results["predict"]
    s = engine["settings"]
    switch, pred, ratios = engine["prefix_switch"], engine["predict"], engine["ratios"]
    engine_table = md_table(
        ["measurement", "p50 / p95 ms", "baseline in the same run", "ratio"],
        [
            ["prefix switch, hot (tensors copied into the live LoRA layers)",
             f"{fmt(switch['hot']['p50_ms'])} / {fmt(switch['hot']['p95_ms'])}",
             f"cold rebuild (base + LoRA + files): {fmt(switch['cold']['p50_ms'], 0)} ms",
             f"cold = {times(ratios['cold_over_hot_switch'], 0)} hot"],
            [f"ensemble predict, batch of 32 ({s['shards']} shards)",
             f"{fmt(pred['ensemble_batch32']['p50_ms'], 0)} / "
             f"{fmt(pred['ensemble_batch32']['p95_ms'], 0)}",
             f"one plain MiniLM forward: {fmt(pred['base_forward_batch32']['p50_ms'], 0)} ms",
             times(ratios["ensemble_over_base_batch32"])],
            ["ensemble predict, one input",
             f"{fmt(pred['ensemble_one']['p50_ms'], 1)} / {fmt(pred['ensemble_one']['p95_ms'], 1)}",
             f"one plain forward: {fmt(pred['base_forward_one']['p50_ms'], 1)} ms",
             times(ratios["ensemble_over_base_one"])],
        ],
    )  # fmt: skip
    ps = predict["settings"]
    api_rows = [
        [f"{block['inputs']} input{'s' if block['inputs'] > 1 else ''}",
         f"{fmt(block['api']['p50_ms'], 1)} / {fmt(block['api']['p95_ms'], 1)}",
         f"{fmt(block['engine']['p50_ms'], 1)} / {fmt(block['engine']['p95_ms'], 1)}",
         times(block["api_over_engine_p50"]), block["same_predictions"]]
        for block in predict["predict"].values()
    ]  # fmt: skip
    per_shard = ratios["ensemble_over_base_batch32"] / s["shards"]
    return f"""\
Scripts: `bench/bench_engine.py` (engine only) and `bench/bench_predict.py` (through
`POST /api/v1/models/{{id}}/predict/`). MiniLM, m={s['shards']}, L={s['slices']},
B={s['budget']}, {s['train_messages']:,} training messages.

{engine_table}

An S3T ensemble costs one forward pass per serving shard ({times(per_shard)} a plain
forward per shard at batch 32) plus {fmt(switch["hot"]["p50_ms"])} ms per shard to switch
prefixes: this is where S3T loses to a single model at inference, by about the number of
shards. SISA pays the same per-shard cost; a single fine-tuned model does not.

Through the API (m={ps['shards']}, L={ps['slices']}, B={ps['budget']}, {ps['database']},
ML-engineer token; the engine baseline is `Ensemble` called directly on the same inputs):

{md_table(["request", "API p50 / p95 ms", "engine p50 / p95 ms", "API ÷ engine",
           "same predictions"], api_rows)}

First (cold) request in a process: {fmt(predict['cold']['api_first_request_ms'], 0)} ms
(loads the base once), engine first call {fmt(predict['cold']['engine_first_call_ms'], 0)} ms.
"""  # fmt: skip
