from __future__ import annotations

import re
import statistics
from collections import Counter
from itertools import pairwise

import pytest

from unlearning import sample_data, sample_phrases
from unlearning.sample_data import (
    FIELDS,
    LABELS,
    SampleRecord,
    from_csv,
    from_jsonl,
    generate,
    to_csv,
    to_jsonl,
    write_jsonl,
)


@pytest.fixture(scope="module")
def dataset():
    return generate()


def _skeleton(template: str) -> re.Pattern[str]:
    # Slots become wildcards; trailing punctuation may be varied by the generator.
    parts = re.split(r"\{\w+\}", template.rstrip(".!?"))
    return re.compile(".+?".join(re.escape(part) for part in parts), re.IGNORECASE)


def _skeletons(split: str) -> dict[str, list[re.Pattern[str]]]:
    return {label: [_skeleton(t) for t in sample_data._PHRASINGS[split, label]] for label in LABELS}


def _matches(text: str, patterns: dict[str, list[re.Pattern[str]]]) -> set[str]:
    return {label for label, pats in patterns.items() if any(p.search(text) for p in pats)}


def test_same_seed_gives_identical_dataset():
    assert generate(num_subjects=80, seed=7) == generate(num_subjects=80, seed=7)


def test_different_seed_gives_different_dataset():
    first, second = generate(num_subjects=80, seed=1), generate(num_subjects=80, seed=2)
    texts_a = {r.text for r in first.train}
    texts_b = {r.text for r in second.train}
    assert len(texts_a & texts_b) < 0.5 * len(texts_a)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_sizes_at_default_scale(seed):
    data = generate(seed=seed)
    assert 1000 <= len(data.train) <= 1500
    assert 200 <= len(data.test) <= 400


def test_subject_counts_and_disjoint_splits(dataset):
    train_subjects, test_subjects = dataset.subjects(), dataset.subjects("test")
    assert len(train_subjects) == 300
    assert len(test_subjects) == 75
    assert not set(train_subjects) & set(test_subjects)
    assert all(re.fullmatch(r"subj-\d{4}", s) for s in train_subjects + test_subjects)


def test_small_dataset_subject_count_and_no_test_split():
    data = generate(num_subjects=5, seed=3, test_fraction=0.0)
    assert data.subjects() == tuple(f"subj-{i:04d}" for i in range(5))
    assert data.test == ()


def test_messages_per_subject_are_skewed(dataset):
    counts = [len(records) for records in dataset.by_subject().values()]
    assert min(counts) == 1
    assert max(counts) == 8
    assert statistics.median(counts) <= 3
    assert sum(counts) == len(dataset.train)


def test_by_subject_groups_only_that_subjects_records(dataset):
    grouped = dataset.by_subject("test")
    assert list(grouped) == sorted(grouped)
    for subject, records in grouped.items():
        assert {r.subject_id for r in records} == {subject}


def test_labels_present_and_roughly_balanced(dataset):
    assert dataset.labels == LABELS
    assert len(set(LABELS)) == 6
    for split, low, high in (("train", 0.7, 1.3), ("test", 0.5, 1.5)):
        counts = Counter(r.label for r in dataset.records(split))
        assert set(counts) == set(LABELS)
        mean = len(dataset.records(split)) / len(LABELS)
        assert all(low * mean <= n <= high * mean for n in counts.values()), (split, counts)


def test_external_ids_unique_and_formatted(dataset):
    ids = [r.external_id for r in dataset.train + dataset.test]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"msg-\d{6}", i) for i in ids)


def test_texts_mostly_8_to_30_words_and_varied(dataset):
    lengths = [len(r.text.split()) for r in dataset.train + dataset.test]
    assert sum(8 <= n <= 30 for n in lengths) >= 0.95 * len(lengths)
    assert len({r.text for r in dataset.train}) >= 0.9 * len(dataset.train)


def test_texts_carry_personal_data(dataset):
    pii = re.compile(r"#\d{7}|[\w.]+@[\w.]+|C-\d{6}")
    share = sum(bool(pii.search(r.text)) for r in dataset.train) / len(dataset.train)
    assert share >= 0.3


def test_each_subject_writes_with_one_well_formed_email(dataset):
    email = re.compile(r"[\w.+-]+@[\w.-]+\w")
    for records in dataset.by_subject().values():
        found = {m for r in records for m in email.findall(r.text.lower())}
        assert len(found) <= 1
        assert all(re.fullmatch(r"[a-z]+\.[a-z]+\d{1,2}@[a-z]+\.[a-z]+", e) for e in found)


def test_messages_arrive_interleaved_across_subjects(dataset):
    changes = sum(a.subject_id != b.subject_id for a, b in pairwise(dataset.train))
    assert changes >= 0.9 * (len(dataset.train) - 1)


def test_every_text_matches_a_template_of_its_own_label(dataset):
    for split in ("train", "test"):
        patterns = _skeletons(split)
        for record in dataset.records(split):
            assert record.label in _matches(record.text, patterns), record


def test_held_out_phrasings_never_appear_in_train(dataset):
    held_out, seen = _skeletons("test"), _skeletons("train")
    assert all(not _matches(r.text, held_out) for r in dataset.train)
    assert all(not _matches(r.text, seen) for r in dataset.test)


def test_held_out_keywords_never_appear_in_train(dataset):
    held_out = [
        value
        for (section, _key), values in sample_data._parse(sample_phrases.VOCAB_TEXT).items()
        if section == "test"
        for value in values
        if "{" not in value
    ]
    assert len(held_out) >= 20
    train_text = "\n".join(r.text for r in dataset.train).lower()
    assert [word for word in held_out if word.lower() in train_text] == []
    test_text = "\n".join(r.text for r in dataset.test).lower()
    assert sum(word.lower() in test_text for word in held_out) >= 0.8 * len(held_out)


def test_jsonl_round_trip(dataset, tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl(dataset.train, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(dataset.train)
    assert from_jsonl(path.read_text(encoding="utf-8")) == dataset.train
    assert from_jsonl(to_jsonl(dataset.test)) == dataset.test


def test_csv_round_trip_with_awkward_text(dataset):
    odd = SampleRecord("msg-999999", "subj-9999", 'He said "refund", then\nleft; €5', "billing")
    records = (*dataset.test, odd)
    text = to_csv(records)
    assert text.splitlines()[0] == ",".join(FIELDS)
    assert from_csv(text) == records


@pytest.mark.parametrize(
    "text",
    [
        '{"external_id": "a", "subject_id": "b", "text": "c"}\n',
        '{"external_id": "a", "subject_id": "b", "text": "c", "label": 1}\n',
        '["a", "b", "c", "d"]\n',
    ],
)
def test_from_jsonl_rejects_malformed_records(text):
    with pytest.raises(ValueError, match="record"):
        from_jsonl(text)


def test_from_csv_rejects_wrong_columns():
    with pytest.raises(ValueError, match="fields"):
        from_csv("external_id,subject_id,text\na,b,c\n")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_subjects": 0}, "num_subjects"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        generate(**kwargs)
