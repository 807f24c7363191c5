"""`lmforge sample` with the generation engine's flags, and the matching `Run` API."""

import json

import pytest
import torch

from lmforge.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def sample(capsys, run_dir, *args):
    code = main(["sample", str(run_dir), *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_num_samples_prints_each_and_sample_i_uses_seed_plus_i(capsys, tiny_run):
    code, out, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 15, "--num-samples", 3, "--seed", 4,
                          "--temperature", 1.5)
    assert code == 0
    parts = out.split("--- sample ")[1:]
    assert len(parts) == 3
    texts = [p.split("---\n", 1)[1].rstrip("\n") for p in parts]
    assert all(t.startswith("All") for t in texts) and len(set(texts)) > 1
    _, alone, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 15, "--seed", 6, "--temperature", 1.5)
    assert alone.rstrip("\n") == texts[2]
    _, streamed, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 15, "--num-samples", 3,
                            "--seed", 4, "--temperature", 1.5, "--stream")
    assert streamed == out


def test_json_gives_tokens_with_logprobs_and_alternatives(capsys, tiny_run):
    code, out, _ = sample(capsys, tiny_run, "--prompt", "Speak", "--max-new-tokens", 8, "--json", "--top-logprobs", 3,
                          "--seed", 1, "--num-samples", 2)
    assert code == 0
    result = json.loads(out)
    assert result["prompt"] == "Speak" and len(result["samples"]) == 2
    for s in result["samples"]:
        assert s["finish_reason"] == "length" and len(s["tokens"]) == 8
        assert "".join(t["text"] for t in s["tokens"]) == s["text"]
        for t in s["tokens"]:
            assert t["logprob"] <= 0 and len(t["top"]) == 3
            tops = [a["logprob"] for a in t["top"]]
            assert tops == sorted(tops, reverse=True) and t["logprob"] <= tops[0] + 1e-6
            if t["id"] in [a["id"] for a in t["top"]]:
                assert t["logprob"] == pytest.approx(next(a["logprob"] for a in t["top"] if a["id"] == t["id"]))


def test_stop_and_ban(capsys, tiny_run):
    _, free, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 60, "--greedy")
    continuation = free.rstrip("\n")[3:]
    assert len(continuation) == 60
    stop = continuation[10:12]
    _, stopped, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 60, "--greedy", "--stop", stop)
    assert stopped.rstrip("\n") == "All" + continuation[: continuation.index(stop)]
    _, json_out, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 60, "--greedy", "--stop", stop,
                            "--json")
    assert json.loads(json_out)["samples"][0]["finish_reason"] == "stop"
    common = max(set(continuation), key=continuation.count)
    _, banned, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 60, "--greedy", "--ban", common)
    assert common not in banned.rstrip("\n")[3:]


def greedy_with_penalties(run_dir, prompt: str, n: int, repetition: float, presence: float, frequency: float) -> str:
    """Greedy decoding with the penalties written out by hand, one full forward per token: CTRL's repetition
    penalty over the prompt and the output, OpenAI's presence and frequency penalties over the output only."""
    import torch

    import lmforge

    run = lmforge.load(run_dir, device="cpu")
    ids, out = run.tokenizer.encode(prompt), []
    for _ in range(n):
        with torch.no_grad():
            logits = run.model(torch.tensor([ids + out]))[0, -1].tolist()
        for t in set(ids + out):
            logits[t] = logits[t] * repetition if logits[t] < 0 else logits[t] / repetition
        for t in set(out):
            logits[t] -= presence + frequency * out.count(t)
        out.append(max(range(len(logits)), key=logits.__getitem__))
        if out[-1] == run.tokenizer.eos_id:
            break
    return run.tokenizer.decode(out)


@pytest.mark.parametrize("repetition, presence, frequency", [(1.3, 0.5, 0.2), (2.0, 0.0, 0.0), (1.0, 0.0, 0.7),
                                                             (5.0, 50.0, 0.0)])
def test_penalties_give_the_hand_written_greedy_decode(capsys, tiny_run, repetition, presence, frequency):
    n = 25  # with the 3-character prompt, inside the tiny model's 32-token context: no cropping to write by hand
    _, free, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", n, "--greedy")
    code, out, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", n, "--greedy", "--repetition-penalty",
                          repetition, "--presence-penalty", presence, "--frequency-penalty", frequency)
    continuation = out.removesuffix("\n").removeprefix("All")
    assert code == 0 and out.startswith("All")
    assert continuation == greedy_with_penalties(tiny_run, "All", n, repetition, presence, frequency)
    assert continuation != free.removesuffix("\n").removeprefix("All")  # the penalties changed the text
    if presence >= 50:  # far above any logit gap: no character of the output comes twice
        assert len(set(continuation)) == len(continuation) == n


def test_a_newline_stop_typed_as_backslash_n(capsys, tiny_run):
    _, free, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 200, "--seed", 2)
    continuation = free.removeprefix("All")
    assert "\n" in continuation.rstrip("\n")  # the same seed without the stop writes a newline...
    _, out, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 200, "--seed", 2, "--stop", "\\n")
    assert out == "All" + continuation[: continuation.index("\n")] + "\n"  # ...and with it, ends just before it


def test_beams_return_the_best_beams(capsys, tiny_run):
    code, out, _ = sample(capsys, tiny_run, "--prompt", "All", "--max-new-tokens", 12, "--beams", 3, "--num-samples", 2,
                          "--json")
    assert code == 0
    beams = json.loads(out)["samples"]
    assert len(beams) == 2 and beams[0]["score"] >= beams[1]["score"]
    total = sum(t["logprob"] for t in beams[0]["tokens"])
    assert beams[0]["score"] == pytest.approx(total / 12, abs=1e-4)


@pytest.mark.parametrize("args, fragment", [
    (["--min-p", "1.5"], "--min-p"),
    (["--repetition-penalty", "0"], "--repetition-penalty"),
    (["--beams", "0"], "--beams"),
    (["--beams", "2", "--temperature", "0.5"], "--beams"),
    (["--beams", "2", "--num-samples", "3"], "--num-samples 3 is more than --beams 2"),
    (["--beams", "2", "--stream"], "--stream"),
    (["--json", "--stream"], "--stream"),
    (["--num-samples", "0"], "--num-samples"),
    (["--decode", "fast"], "--decode"),
    (["--stop", ""], "--stop"),
    (["--stop", "\\x"], "--stop '\\\\x' has a broken escape"),
    (["--ban", "\\u12"], "--ban '\\\\u12' has a broken escape"),
    (["--seed", str(10**30)], "--seed must be less than or equal to 9223372036854775807"),
    (["--device", "tpu"], "--device must be one of auto, cpu, cuda, cuda:N, mps, not 'tpu'"),
    pytest.param(["--device", "cuda"], "--device cuda: no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")),
])
def test_bad_sample_flags_give_one_line(capsys, tiny_run, args, fragment):
    code, out, err = sample(capsys, tiny_run, "--max-new-tokens", 5, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "error:" in lines[0] and fragment in lines[0], err
    assert out == ""


def test_run_api_takes_every_option(tiny_run):
    import lmforge

    run = lmforge.load(tiny_run)
    text = run.generate("All", max_new_tokens=20, greedy=True, ban="e", stop=["zz"], repetition_penalty=1.2)
    assert text.startswith("All") and "e" not in text[3:]
    samples = run.sample("All", 10, num_samples=2, seed=0, top_logprobs=1, min_p=0.05)
    assert [len(s.tokens) for s in samples] == [10, 10]
    with pytest.raises(lmforge.LmforgeError, match="options are the fields"):
        run.generate("All", max_new_tokens=3, top_q=0.5)


def test_sample_flags_are_the_decode_config_fields():
    """Every DecodeConfig field but those set another way is a flag with the field's help, and nothing else is."""
    from lmforge.cli import build_parser
    from lmforge.commands.sample import NOT_FLAGS
    from lmforge.config import DecodeConfig

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["sample"]
    flags = {a.dest: a for a in sub._actions if a.dest in DecodeConfig.model_fields}
    assert set(NOT_FLAGS) < set(DecodeConfig.model_fields)  # a removed field leaves no entry behind
    assert set(flags) == set(DecodeConfig.model_fields) - set(NOT_FLAGS)
    for name, action in flags.items():
        assert action.option_strings == [DecodeConfig.flag((name,))] and action.help == DecodeConfig.model_fields[name].description
        assert action.help, name
