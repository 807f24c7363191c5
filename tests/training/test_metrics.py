"""metrics.jsonl and samples.txt are rewound to the checkpoint step on resume."""

import json

from lmforge.training.logs import append_sample, read_metrics, rewind_metrics, rewind_samples


def test_rewind_drops_later_steps_end_records_and_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"event": "start"}] + [{"event": "train", "step": s} for s in range(1, 9)]
    lines += [{"event": "eval", "step": 4}, {"event": "end", "step": 3, "reason": "interrupted"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"event": "train", "st')
    assert rewind_metrics(path, 5) == 5  # steps 6, 7, 8, the end record, the torn line
    kept = read_metrics(path)
    assert [r.get("step") for r in kept] == [None, 1, 2, 3, 4, 5, 4]
    assert not any(r["event"] == "end" for r in kept)


def test_rewind_samples_cuts_sections_after_the_step(tmp_path):
    path = tmp_path / "samples.txt"
    for step in (10, 20, 30):
        append_sample(path, step, 1.5, f"text of step {step}")
    rewind_samples(path, 20)
    text = path.read_text()
    assert "text of step 20" in text and "step 30" not in text and text.endswith("\n\n")
    rewind_samples(path, 25)  # nothing after: unchanged
    assert path.read_text() == text
