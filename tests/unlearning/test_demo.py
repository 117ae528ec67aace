"""The engine demo runs end to end and really destroys the erased subject's stages."""

from __future__ import annotations

import re

from unlearning.demo import main


def test_quick_demo_erases_and_reports(tmp_path, capsys):
    root = tmp_path / "artifacts"
    assert main(["--quick", "--backbone", "tiny-bert", "--artifacts", str(root)]) == 0
    out = capsys.readouterr().out
    depths = re.search(r"sequence depths \[([\d, ]+)\] -> \[([\d, ]+)\]", out)
    assert depths, out
    before = [int(d) for d in depths.group(1).split(",")]
    after = [int(d) for d in depths.group(2).split(",")]
    assert before == [3, 3]
    assert after != before
    assert all(a <= b for a, b in zip(after, before, strict=True))
    destroyed = re.search(r"destroyed (\d+) stages: (.*)", out)
    assert destroyed
    assert int(destroyed.group(1)) > 0
    for slug in destroyed.group(2).split(", "):
        assert not (root / f"{slug}.safetensors").exists()
    remaining = list(root.glob("shard-*/stage-*.safetensors"))
    assert len(remaining) == 12 - int(destroyed.group(1))
    assert "Held-out accuracy" in out


def test_second_run_resets_its_artifacts(tmp_path, capsys):
    root = tmp_path / "artifacts"
    main(["--quick", "--backbone", "tiny-bert", "--artifacts", str(root)])
    capsys.readouterr()
    main(["--quick", "--backbone", "tiny-bert", "--artifacts", str(root)])
    assert "Resetting demo artifacts" in capsys.readouterr().out
