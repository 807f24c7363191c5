"""`lmforge sample`: continue a prompt with a trained model, by any decoding the engine has."""

from __future__ import annotations

import argparse
import json
import sys

from lmforge.commands.common import load_run, unescape
from lmforge.errors import LmforgeError

HELP = "write text with a trained model"
SHARED = ("json", "device", "quantize")
DESCRIPTION = ("Continue a prompt with a trained model. Processors apply in this order: repetition, presence and "
               "frequency penalties, bans, temperature, top-k, top-p, min-p. A decoding flag left out takes the value "
               "of the run's `sample` section, or else DecodeConfig's default.")

EXAMPLES = """examples:
  lmforge sample runs/shakespeare --prompt "ROMEO:" --max-new-tokens 300
  lmforge sample runs/shakespeare --greedy
  lmforge sample runs/shakespeare --temperature 0.9 --top-k 40 --top-p 0.95 --seed 1 --stream
  lmforge sample runs/shakespeare --min-p 0.05 --repetition-penalty 1.2 --stop '\\n\\n' --num-samples 3
  lmforge sample runs/shakespeare --beams 4 --length-penalty 1.0 --max-new-tokens 40
  lmforge sample runs/shakespeare --json --max-new-tokens 20 --top-logprobs 3   # per-token log-probabilities"""


# the DecodeConfig fields that are set another way than by a flag of their own
NOT_FLAGS = {"banned_ids": "--ban TEXT bans the tokens of a text", "eos_id": "the tokenizer's end of text"}
SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per DecodeConfig field but NOT_FLAGS, its type and help the field's; a flag left out means the
    run's `sample` section, or else DecodeConfig's default."""
    from typing import get_args, get_origin

    from lmforge.config import DecodeConfig

    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--prompt", default=None, help="text to continue (default: the run's sample prompt)")
    for name, field in DecodeConfig.model_fields.items():
        if name in NOT_FLAGS:
            continue
        kind, flag = field.annotation, DecodeConfig.flag((name,))  # e.g. bool, float, int | None, tuple[str, ...]
        if kind is bool:
            p.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=field.description)
        elif get_origin(kind) is tuple:
            p.add_argument(flag, dest=name, action="append", metavar="TEXT", help=field.description)
        else:
            kind = next((k for k in (int, float) if k in (kind, *get_args(kind))), str)
            p.add_argument(flag, dest=name, type=kind, metavar={int: "N", float: "X"}.get(kind, name.upper()),
                           help=field.description)
    p.add_argument("--ban", action="append", default=[], metavar="TEXT",
                   help="never produce the token(s) of TEXT (repeatable; \\n and \\t mean newline and tab)")
    p.add_argument("--num-samples", type=int, default=1, metavar="N", help="how many samples (with --beams: best beams)")
    p.add_argument("--stream", action="store_true", help="print tokens as they are produced")
    p.add_argument("--top-logprobs", type=int, default=5, metavar="N", help="alternatives per token in --json (default 5)")


def decode_options(args: argparse.Namespace, run) -> dict:
    """The DecodeConfig values the flags give, over the run's `sample` section, for `Run.sample` and `Run.stream`."""
    from lmforge.config import DecodeConfig

    given = {name: getattr(args, name) for name in DecodeConfig.model_fields.keys() - NOT_FLAGS
             if getattr(args, name) is not None}
    if given.get("num_beams", 1) > 1 and any(name in given for name in SAMPLING_ONLY):
        raise LmforgeError("--beams searches deterministically; drop --temperature, --top-k, --top-p and --min-p")
    options = run.config.sample.model_dump(exclude={"prompt"})  # the settings it shares with DecodeConfig
    options.update(given, ban=[unescape(b, "--ban") for b in args.ban],
                   stop=tuple(unescape(x, "--stop") for x in given.get("stop", ())))
    return options


def sample_to_dict(sample) -> dict:
    """A `Sample` as plain JSON: text, finish reason, beam score, and each token's log-probability."""
    out = {"text": sample.text, "finish_reason": sample.finish_reason}
    if sample.score is not None:
        out["score"] = sample.score
    out["tokens"] = [{"id": t.id, "text": t.text, "logprob": t.logprob,
                      "top": [{"id": i, "text": text, "logprob": lp} for i, text, lp in t.top]} for t in sample.tokens]
    return out


def run(args: argparse.Namespace, extra: list[str]) -> int:
    if args.json and args.stream:
        raise LmforgeError("--json prints one object when sampling ends; drop --stream")
    if args.stream and (args.num_beams or 1) > 1:
        raise LmforgeError("beam search knows its best beams only at the end; drop --stream")
    if args.top_logprobs < 0:
        raise LmforgeError(f"--top-logprobs must be 0 or more, not {args.top_logprobs}")
    run = load_run(args)
    prompt = run.config.sample.prompt if args.prompt is None else args.prompt
    options = decode_options(args, run)
    n, seed = options.pop("max_new_tokens"), options.pop("seed", None)
    run.decode_config(n, **options)  # check every value before anything is printed
    if args.num_samples < 1:
        raise LmforgeError(f"--num-samples must be at least 1, not {args.num_samples}")
    unknown = run.tokenizer.unknown_count(prompt)
    if unknown:
        print(f"warning: {unknown} {run.tokenizer.unknown_unit}(s) of the prompt are not in the vocabulary and were replaced",
              file=sys.stderr)
    if args.json:
        samples = run.sample(prompt, n, args.num_samples, top_logprobs=args.top_logprobs, seed=seed, **options)
        print(json.dumps({"prompt": prompt, "samples": [sample_to_dict(x) for x in samples]}, ensure_ascii=False))
        return 0
    if args.stream:  # one after another; sample i still uses seed S+i, so it matches the batched output
        texts = (run.stream(prompt, n, seed=None if seed is None else seed + i, **options)
                 for i in range(args.num_samples))
    else:
        texts = ([sample.text] for sample in run.sample(prompt, n, args.num_samples, seed=seed, **options))
    for i, pieces in enumerate(texts):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        sys.stdout.write(prompt)
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    return 0
