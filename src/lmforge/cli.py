"""The `lmforge` command: argument parsing only; the work happens in the modules it calls.

Each subcommand is one function `cmd_NAME(args)` plus the `add_NAME(subparsers)`
that declares its flags; `COMMANDS` is the one list of both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lmforge.errors import LmforgeError

EXAMPLES = {
    "train": """examples:
  lmforge train                                    # default preset on the built-in corpus
  lmforge train --preset shakespeare-char-cpu --data tinyshakespeare.txt --out runs/shakespeare
  lmforge train --data my.txt --train.max_steps 2000 --model.n_layer 6
  lmforge train --config my_config.yaml --train.lr 3e-4
  lmforge train --resume runs/shakespeare          # continue from the newest checkpoint
  lmforge train --resume runs/shakespeare --train.max_steps 4000
  torchrun --nproc_per_node=4 -m lmforge train --out runs/ddp   # 4 processes (GPUs, or CPUs with gloo)""",
    "sample": """examples:
  lmforge sample runs/shakespeare --prompt "ROMEO:" --max-new-tokens 300
  lmforge sample runs/shakespeare --greedy
  lmforge sample runs/shakespeare --temperature 0.9 --top-k 40 --top-p 0.95 --seed 1 --stream
  lmforge sample runs/shakespeare --min-p 0.05 --repetition-penalty 1.2 --stop '\\n\\n' --num-samples 3
  lmforge sample runs/shakespeare --beams 4 --length-penalty 1.0 --max-new-tokens 40
  lmforge sample runs/shakespeare --json --max-new-tokens 20 --top-logprobs 3   # per-token log-probabilities""",
    "eval": """examples:
  lmforge eval runs/shakespeare --data held_out.txt
  lmforge eval runs/shakespeare --data held_out.txt --stride 32     # overlapping windows: more context per token
  lmforge eval runs/shakespeare --data held_out.txt --json > base.json
  lmforge eval runs/shakespeare --data held_out.txt --save          # kept in RUN_DIR/evals/ for `lmforge report`""",
    "probe": """examples:
  lmforge probe runs/demo --suite sotu                              # the example suite for the built-in corpus
  lmforge probe runs/mine --suite my_probes.jsonl --min-pass 0.8    # exit 1 when under 80% of checks pass
  lmforge probe runs/mine --suite my_probes.jsonl --json

suite lines (JSONL, one probe per line):
  {"id": "us", "prompt": "the United", "contains": " States"}
  {"id": "no-loop", "prompt": "The", "not_contains": ["the the"], "temperature": 0.8, "seed": 1}
  {"id": "year", "prompt": "In the year 18", "regex": "^\\\\d\\\\d"}
  {"id": "mc", "prompt": "the United", "choices": [" States", " Kingdom"], "answer": " States"}
  {"id": "same", "prompts": ["Fellow-Citizens of the", "Fellow Citizens of the"], "agree_on": "first_word"}""",
    "study": """examples:
  lmforge study runs/shakespeare --prompts prompts.txt              # one prompt per line
  lmforge study runs/shakespeare --prompts prompts.txt --strategies greedy,t=0.8,k=40,p=0.9,t=0.8+p=0.95
  lmforge study runs/shakespeare --prompts prompts.txt --samples 8 --max-new-tokens 200 --json""",
    "regress": """examples:
  lmforge regress runs/new --baseline runs/old                      # best val loss and bits/byte from metrics.jsonl
  lmforge eval runs/old --data held_out.txt --json > base.json
  lmforge regress runs/new --baseline base.json --tolerance 0.005   # runs/new is evaluated on the same file
  lmforge regress runs/new --baseline runs/old --data held_out.txt --abs-tolerance 0.02""",
    "report": """examples:
  lmforge report runs/shakespeare                                   # runs/shakespeare/report.html and report.md
  lmforge report runs/demo --data held_out.txt --suite sotu         # also evaluate a file and run a probe suite
  lmforge report runs/demo --out reports/demo.html""",
    "prepare": """examples:
  lmforge prepare --data speeches/ --tokenizer bpe --vocab-size 8000 --out data/speeches
  lmforge prepare --data 'books/**/*.txt' --tokenizer my_bpe.json --out data/books
  lmforge prepare --data corpus.jsonl --text-field body --tokenizer gpt2-files/ --out data/corpus
  lmforge prepare --data plays.txt --separator '\n\n' --tokenizer char --out data/plays
  lmforge train --data data/speeches --out runs/speeches          # train on the prepared shards""",
    "tokenizer": """examples:
  lmforge tokenizer train --kind bpe --data speeches/ --vocab-size 8000 --out bpe.json
  lmforge tokenizer train --kind word --data plays.txt --vocab-size 5000 --out word.json
  lmforge tokenizer inspect bpe.json --data held_out.txt
  lmforge tokenizer inspect gpt2-files/ --data held_out.txt --json""",
    "compare": """examples:
  lmforge compare --families ngram,rnn,transformer --data tinyshakespeare.txt --seconds 120 --out runs/cmp
  lmforge compare runs/a runs/b runs/c                       # the val split of the data they were trained on
  lmforge compare runs/a runs/b --data other.txt --out runs/ab""",
}


# ---------------------------------------------------------------------- train


def add_train(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a model (no arguments: the default preset on the built-in corpus)",
        description="Train a language model and write a run directory. Any config value can be overridden "
        "with --section.key VALUE, e.g. --train.max_steps 2000 or --model.n_layer 6.",
    )
    p.add_argument("--config", metavar="FILE.yaml", help="a YAML config applied on top of the preset")
    p.add_argument("--preset", metavar="NAME", help="a named preset (default: 'default'); see `lmforge presets`")
    p.add_argument("--data", metavar="PATH",
                   help="a UTF-8 text file, or a directory from `lmforge prepare` (default: the built-in corpus)")
    p.add_argument("--out", metavar="RUN_DIR", help="where to write the run (default: runs/PRESET-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR exactly where its newest checkpoint left off, with its config.yaml "
                   "(--train.* and --sample.* overrides allowed, e.g. a larger --train.max_steps)")
    p.add_argument("--tokenizer", metavar="KIND", help="char | word | bpe (= --data.tokenizer; a prepared --data "
                   "brings its own)")
    p.add_argument("--vocab-size", type=int, metavar="N", help="word or bpe vocabulary size (= --data.vocab_size; "
                   "default 8192)")
    return p


def parse_overrides(extra: list[str]) -> list[tuple[str, str]]:
    """`--section.key VALUE` or `--section.key=VALUE` pairs from the unparsed arguments."""
    pairs, i = [], 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg:
            raise LmforgeError(f"unrecognized argument '{arg}'; config overrides look like --train.max_steps 2000")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra):
                raise LmforgeError(f"'{arg}' needs a value, e.g. {arg} 2000")
            value, i = extra[i + 1], i + 1
        pairs.append((key, value))
        i += 1
    return pairs


def build_config(args: argparse.Namespace, overrides: list[tuple[str, str]]):
    from lmforge.config import Config, load_preset, read_yaml

    preset = args.preset or "default"
    cfg = Config.from_dict(load_preset(preset), source=f"preset '{preset}'")
    if args.config:
        cfg.update(read_yaml(args.config), source=args.config)
    for key, value in overrides:
        cfg.set(key, value)
    if args.data:
        cfg.data.path = args.data
    if args.tokenizer is not None:
        cfg.data.tokenizer = args.tokenizer
    if args.vocab_size is not None:
        cfg.data.vocab_size = args.vocab_size
    return cfg.validate(), preset


def build_resume_config(args: argparse.Namespace, overrides: list[tuple[str, str]]):
    """The run's own config.yaml, with the overrides that leave its model and data alone."""
    from lmforge.config import Config
    from lmforge.training.run_dir import CONFIG_FILE

    run = Path(args.resume)
    if args.preset or args.config:
        raise LmforgeError("--resume continues a run with its own config.yaml; drop --preset and --config "
                           "(change single keys with e.g. --train.max_steps N)")
    if args.out and Path(args.out).resolve() != run.resolve():
        raise LmforgeError(f"--out {args.out} and --resume {run} differ; a resumed run continues in its own folder, "
                           "so drop --out")
    if not (run / CONFIG_FILE).is_file():
        raise LmforgeError(f"'{run}' has no {CONFIG_FILE}, so it is not a run directory; "
                           f"pass --resume with a folder written by `lmforge train --out`")
    if args.tokenizer is not None or args.vocab_size is not None:
        raise LmforgeError("--tokenizer and --vocab-size cannot change when resuming: the run keeps its "
                           "tokenizer.json; start a new run with --out to change them")
    cfg = Config.from_file(run / CONFIG_FILE)
    for key, value in overrides:
        if key.split(".")[0] in ("model", "data") or key == "train.seed":
            raise LmforgeError(f"--{key} cannot change when resuming: the checkpoint holds a model trained with the "
                               "saved value; start a new run with --out to change it")
        cfg.set(key, value)
    if args.data:
        cfg.data.path = args.data  # the same text, moved; the checkpoint checks that it is the same
    return cfg.validate()


def cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    if args.resume:
        cfg, out = build_resume_config(args, parse_overrides(extra)), Path(args.resume)
    else:
        cfg, preset = build_config(args, parse_overrides(extra))
        out = Path(args.out) if args.out else Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"

    from lmforge.training import Trainer

    trainer = Trainer(cfg, out, resume=bool(args.resume))  # reads and checks the data before anything is printed or written
    main_rank = trainer.dist.is_main  # under torchrun, rank 0 alone prints
    model = trainer.model  # not kept past fit: under torchrun the model holds the process group (distributed.close)
    if args.resume and main_rank:
        print(f"resuming {out} at step {trainer.step} of {cfg.train.max_steps} on {trainer.device}", file=sys.stderr)
    elif main_rank:
        what = model.describe() if model.fitted_by_counts else f"{model.describe()}, {model.num_params():,} parameters"
        how = "by counting" if model.fitted_by_counts else f"for {cfg.train.max_steps} steps"
        print(f"training a {what} on {cfg.data.path or 'the built-in corpus'} {how} on {trainer.device} → {out}",
              file=sys.stderr)
    del model
    result = trainer.fit()
    if not main_rank:
        return 0
    print(f"run saved to {result.out_dir}")
    print(f"best val loss {result.best_val_loss:.4f} nats/token at step {result.best_step}: "
          f"val perplexity {result.best_val_ppl:.3f}, {result.best_val_bpb:.4f} bits/byte")
    print("--- sample ---")
    print(result.sample)
    return 0


# ---------------------------------------------------------------------- sample


def add_sample(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("sample", help="write text with a trained model", description="Continue a prompt with a trained model. "
                       "Processors apply in this order: repetition, presence and frequency penalties, bans, "
                       "temperature, top-k, top-p, min-p.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--prompt", default=None, help="text to continue (default: the run's sample prompt)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N", help="tokens to generate (default: the run's)")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--temperature", type=float, default=None, metavar="T", help="below 1 sharpens, above 1 flattens")
    p.add_argument("--top-k", type=int, default=None, metavar="K", help="sample among the K most likely tokens (0: all)")
    p.add_argument("--top-p", type=float, default=None, metavar="P", help="sample from the smallest set with probability ≥ P")
    p.add_argument("--min-p", type=float, default=None, metavar="P",
                   help="drop tokens less likely than P × the most likely one (0: off)")
    p.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R",
                   help="above 1 discourages tokens already in the prompt or output (1: off)")
    p.add_argument("--presence-penalty", type=float, default=0.0, metavar="X",
                   help="subtract X from tokens the output already holds")
    p.add_argument("--frequency-penalty", type=float, default=0.0, metavar="X",
                   help="subtract X per earlier occurrence in the output")
    p.add_argument("--ban", action="append", default=[], metavar="TEXT",
                   help="never produce the token(s) of TEXT (repeatable; \\n and \\t mean newline and tab)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="end a sample before TEXT (repeatable; \\n and \\t mean newline and tab)")
    p.add_argument("--beams", type=int, default=1, metavar="N", help="beam search with N beams (deterministic)")
    p.add_argument("--length-penalty", type=float, default=1.0, metavar="A",
                   help="beam score = log-probability / length**A; above 0 favours longer outputs")
    p.add_argument("--num-samples", type=int, default=1, metavar="N", help="how many samples (with --beams: best beams)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="make sampling reproducible (sample i uses S+i)")
    p.add_argument("--stream", action="store_true", help="print tokens as they are produced")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: each sample's tokens with log-probabilities and top alternatives")
    p.add_argument("--top-logprobs", type=int, default=5, metavar="N", help="alternatives per token in --json (default 5)")
    p.add_argument("--decode", default="auto", metavar="MODE",
                   help="auto | eager | static | compiled: compiled (static shapes, CUDA graphs) is auto's choice on CUDA")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    add_quantize(p)
    return p


def add_quantize(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantize", default="none", choices=["none", "int8"],
                   help="int8: int8 weights on a CPU, about 3x faster decoding at a small cost in loss")


def cmd_sample(args: argparse.Namespace, extra: list[str]) -> int:
    import lmforge

    if args.beams > 1 and any(v is not None for v in (args.temperature, args.top_k, args.top_p, args.min_p)):
        raise LmforgeError("--beams searches deterministically; drop --temperature, --top-k, --top-p and --min-p")
    if args.json and args.stream:
        raise LmforgeError("--json prints one object when sampling ends; drop --stream")
    if args.stream and args.beams > 1:
        raise LmforgeError("beam search knows its best beams only at the end; drop --stream")
    if args.top_logprobs < 0:
        raise LmforgeError(f"--top-logprobs must be 0 or more, not {args.top_logprobs}")
    run = lmforge.load(args.run_dir, device=args.device, quantize=args.quantize)
    s = run.config.sample
    prompt = s.prompt if args.prompt is None else args.prompt
    n = s.max_new_tokens if args.max_new_tokens is None else args.max_new_tokens
    temperature = s.temperature if args.temperature is None else args.temperature
    options = dict(
        greedy=args.greedy or temperature == 0, temperature=temperature or 1.0,
        top_k=s.top_k if args.top_k is None else args.top_k, top_p=s.top_p if args.top_p is None else args.top_p,
        min_p=args.min_p or 0.0, repetition_penalty=args.repetition_penalty, presence_penalty=args.presence_penalty,
        frequency_penalty=args.frequency_penalty, ban=[unescape(b) for b in args.ban],
        stop=tuple(unescape(x) for x in args.stop), num_beams=args.beams,
        length_penalty=args.length_penalty, mode=args.decode,
    )
    run.decode_config(n, **options)  # check every value before anything is printed
    if args.num_samples < 1:
        raise LmforgeError(f"--num-samples must be at least 1, not {args.num_samples}")
    unknown = getattr(run.tokenizer, "unknown_count", lambda _: 0)(prompt)
    if unknown:
        print(f"warning: {unknown} character(s) of the prompt are not in the vocabulary and were replaced",
              file=sys.stderr)
    many = args.num_samples > 1
    if args.stream:  # one after another; sample i still uses seed S+i, so it matches the batched output
        for i in range(args.num_samples):
            if many:
                print(f"--- sample {i + 1} ---")
            sys.stdout.write(prompt)
            seed = None if args.seed is None else args.seed + i
            for piece in run.stream(prompt, n, seed=seed, **options):
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
        return 0
    samples = run.sample(prompt, n, args.num_samples, top_logprobs=args.top_logprobs if args.json else None,
                         seed=args.seed, **options)
    if args.json:
        print(json.dumps({"prompt": prompt, "samples": [sample_to_dict(x) for x in samples]}, ensure_ascii=False))
        return 0
    for i, sample in enumerate(samples):
        if many:
            print(f"--- sample {i + 1} ---")
        print(prompt + sample.text)
    return 0


def sample_to_dict(sample) -> dict:
    """A `Sample` as plain JSON: text, finish reason, beam score, and each token's log-probability."""
    out = {"text": sample.text, "finish_reason": sample.finish_reason}
    if sample.score is not None:
        out["score"] = sample.score
    out["tokens"] = [{"id": t.id, "text": t.text, "logprob": t.logprob,
                      "top": [{"id": i, "text": text, "logprob": lp} for i, text, lp in t.top]} for t in sample.tokens]
    return out


# ---------------------------------------------------------------------- eval


def add_eval(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="loss, perplexity and bits per byte of a model on a text file",
                       description="Score every token of a text file with a trained model.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--data", required=True, metavar="PATH", help="a UTF-8 text file")
    p.add_argument("--stride", type=int, default=None, metavar="S",
                   help="start a window every S tokens, scoring only its last S (default: the context size, "
                        "non-overlapping windows, as val_loss in training; smaller S: more context per token, "
                        "lower loss, context/S times the work)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--save", action="store_true", help="also write RUN_DIR/evals/eval-NAME.json for `lmforge report`")
    p.add_argument("--batch-size", type=int, default=64, metavar="N", help="windows per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    add_quantize(p)
    return p


def cmd_eval(args: argparse.Namespace, extra: list[str]) -> int:
    import lmforge
    from lmforge.evaluation.evaluate import eval_save_path, evaluate_run

    run = lmforge.load(args.run_dir, device=args.device, quantize=args.quantize)
    result = evaluate_run(run, args.data, stride=args.stride, batch_size=args.batch_size)
    if result["unknown_chars"]:
        print(f"warning: {result['unknown_chars']:,} character(s) of {args.data} are not in the vocabulary and were "
              "replaced", file=sys.stderr)
    if args.save:
        write_json(eval_save_path(args.run_dir, args.data), result)
    if args.json:
        print(json.dumps(result))
    else:
        how = (f"{result['streams']} stream(s) in windows of {result['block_size']}, the state carried"
               if result.get("streams") else f"windows of {result['block_size']} every {result['stride']} tokens")
        print(f"{args.data}: {result['tokens']:,} tokens, {result['bytes']:,} bytes, {how}")
        print(f"loss        {result['loss']:.4f} nats/token")
        print(f"perplexity  {result['perplexity']:.3f}")
        print(f"bits/byte   {result['bits_per_byte']:.4f}")
    return 0


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"saved {path}", file=sys.stderr)


# ---------------------------------------------------------------------- probe


def add_probe(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("probe", help="run a suite of prompt probes and summarize by check type",
                       description="Check what a model does with prompts: contains / not_contains / regex on a "
                       "greedy or sampled continuation, multiple choice ranked by log-likelihood, and groups of "
                       "paraphrased prompts that must agree. Exit status 1 when the pass rate is under --min-pass.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--suite", required=True, metavar="FILE.jsonl",
                   help="a JSONL file, one probe per line, or the name of a shipped suite (sotu)")
    p.add_argument("--min-pass", type=float, default=0.0, metavar="F",
                   help="exit with status 1 when fewer than this fraction of checks pass (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="list every check, not only the failures")
    p.add_argument("--save", action="store_true", help="also write RUN_DIR/evals/probe-NAME.json for `lmforge report`")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    return p


def cmd_probe(args: argparse.Namespace, extra: list[str]) -> int:
    import lmforge
    from lmforge.evaluation.probes import format_report, load_suite, resolve_suite, run_suite

    if not 0.0 <= args.min_pass <= 1.0:
        raise LmforgeError(f"--min-pass is a fraction between 0 and 1, not {args.min_pass}")
    suite = resolve_suite(args.suite)
    probes = load_suite(suite)  # read and checked before the model is loaded
    run = lmforge.load(args.run_dir, device=args.device)
    report = run_suite(run, probes, suite.stem)
    result = {"run": str(args.run_dir), "min_pass": args.min_pass, **report.to_dict()}
    if args.save:
        write_json(Path(args.run_dir) / "evals" / f"probe-{suite.stem}.json", result)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_report(report, verbose=args.verbose))
    if report.pass_rate < args.min_pass:
        print(f"lmforge probe: {report.pass_rate:.1%} of checks passed, under --min-pass {args.min_pass:.1%}",
              file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------- study


def add_study(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from lmforge.evaluation.decoding_study import DEFAULT_STRATEGIES

    p = sub.add_parser("study", help="compare decoding strategies on a set of prompts",
                       description="Decode the same prompts with several strategies and score each on distinct-1/"
                       "distinct-2, rep-4 (repeated word 4-grams), mean log-probability under the model and length. "
                       "Prints a table; writes study.json, study.md and study.png to --out.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help="one prompt per line (\\n for a newline), or JSONL with a \"prompt\" per line")
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES, metavar="LIST",
                   help=f"comma-separated: greedy, temperature=T, top_k=K, top_p=P, joined with + (default {DEFAULT_STRATEGIES})")
    p.add_argument("--samples", type=int, default=4, metavar="N", help="continuations per prompt and strategy")
    p.add_argument("--max-new-tokens", type=int, default=100, metavar="N", help="tokens per continuation")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (each strategy starts from it)")
    p.add_argument("--out", metavar="DIR", help="where to write the results (default RUN_DIR/evals)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    return p


def cmd_study(args: argparse.Namespace, extra: list[str]) -> int:
    import lmforge
    from lmforge.evaluation.decoding_study import format_table, parse_strategies, read_prompts, run_study, save_study

    strategies = parse_strategies(args.strategies)
    prompts = read_prompts(args.prompts)
    run = lmforge.load(args.run_dir, device=args.device)
    results = run_study(run, prompts, strategies, args.max_new_tokens, args.samples, args.seed)
    settings = {"prompts": len(prompts), "samples": args.samples, "max_new_tokens": args.max_new_tokens, "seed": args.seed}
    paths = save_study(results, Path(args.out) if args.out else Path(args.run_dir) / "evals", settings)
    if args.json:
        print(json.dumps({"run": str(args.run_dir), "settings": settings, "strategies": [r.to_dict() for r in results]},
                         ensure_ascii=False))
    else:
        print(format_table(results))
        print(f"\nwrote {paths['json']}, {paths['markdown']} and {paths['plot']}")
    return 0


# ---------------------------------------------------------------------- regress


def add_regress(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("regress", help="fail (exit 1) when a run is worse than a baseline beyond a tolerance",
                       description="Compare a run (or eval JSON) with a baseline run (or eval JSON) on loss and bits "
                       "per byte. A metric regresses when it is worse than the baseline by more than "
                       "max(--tolerance × baseline, --abs-tolerance). Exit status: 0 no regression, 1 regression, "
                       "2 bad input; for CI.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run to check (or an eval JSON)")
    p.add_argument("--baseline", required=True, metavar="RUN_DIR_OR_EVAL_JSON",
                   help="a run directory or the output of `lmforge eval ... --json`")
    p.add_argument("--tolerance", type=float, default=0.01, metavar="F",
                   help="allowed relative worsening (default 0.01: 1%%)")
    p.add_argument("--abs-tolerance", type=float, default=0.0, metavar="X",
                   help="allowed absolute worsening in the metric's units (default 0)")
    p.add_argument("--data", metavar="PATH", help="evaluate every run directory on this file instead of its val split")
    p.add_argument("--stride", type=int, default=None, metavar="S", help="sliding-window stride for --data (see eval)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    return p


def cmd_regress(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.evaluation.regression import format_result, regress

    result = regress(args.run_dir, args.baseline, tolerance=args.tolerance, abs_tolerance=args.abs_tolerance,
                     data=args.data, stride=args.stride, device=args.device)
    print(json.dumps(result.to_dict()) if args.json else format_result(result))
    return 1 if result.regressed else 0


# ---------------------------------------------------------------------- report


def add_report(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="one HTML page (and Markdown): curves, verdict, evals, probes, samples",
                       description="Write RUN_DIR/report.html (self-contained) and report.md: the curves, the best "
                       "step, an under-/overfitting verdict with its evidence, the eval history, results saved in "
                       "RUN_DIR/evals/ by eval --save, probe --save and study, and samples.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="FILE.html", help="where to write the HTML (default RUN_DIR/report.html; "
                   "the Markdown goes beside it)")
    p.add_argument("--data", action="append", default=[], metavar="PATH",
                   help="also evaluate the run on this text file (repeatable); saved in RUN_DIR/evals/")
    p.add_argument("--suite", action="append", default=[], metavar="FILE.jsonl",
                   help="also run this probe suite (repeatable); saved in RUN_DIR/evals/")
    p.add_argument("--stride", type=int, default=None, metavar="S", help="sliding-window stride for --data")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    return p


def cmd_report(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.evaluation.report import build_report

    if args.data or args.suite:
        import lmforge
        from lmforge.evaluation.evaluate import eval_save_path, evaluate_run
        from lmforge.evaluation.probes import load_suite, resolve_suite, run_suite

        suites = [(resolve_suite(s), load_suite(s)) for s in args.suite]  # checked before any work
        run = lmforge.load(args.run_dir, device=args.device)
        for data in args.data:
            write_json(eval_save_path(args.run_dir, data), evaluate_run(run, data, stride=args.stride))
        for path, probes in suites:
            result = {"run": str(args.run_dir), **run_suite(run, probes, path.stem).to_dict()}
            write_json(Path(args.run_dir) / "evals" / f"probe-{path.stem}.json", result)
    result = build_report(args.run_dir, args.out)
    v = result.verdict
    print(f"verdict: {v.label}" + (f"; best step {v.best_step} (val loss {v.best_val_loss:.4f})"
                                   if v.best_step is not None else ""))
    for line in v.evidence:
        print(f"  - {line}")
    print(f"wrote {result.html_path} and {result.markdown_path}")
    return 0


# ---------------------------------------------------------------------- prepare


def add_prepare(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "prepare", help="tokenize a corpus into train/val token shards for `lmforge train --data DIR`",
        description="Tokenize every document of a file, folder, glob or JSONL into memory-mapped train/val shards "
        "plus an index.json. Each document ends with EOS and goes to train or val by a hash of its number and --seed.",
    )
    p.add_argument("--data", metavar="PATH", help="a text file, a folder, a glob ('data/*.txt') or a JSONL file")
    p.add_argument("--tokenizer", metavar="SPEC", help="char | word | bpe (trained on --data), a tokenizer JSON, "
                   "a run or prepared directory, or a folder with GPT-2's encoder.json and vocab.bpe")
    p.add_argument("--out", metavar="DIR", help="the directory to write")
    p.add_argument("--vocab-size", type=int, default=0, metavar="N", help="when --tokenizer is word or bpe (default 8192)")
    p.add_argument("--text-field", metavar="FIELD", help="read the inputs as JSONL, text in FIELD (.jsonl files: 'text')")
    p.add_argument("--separator", metavar="TEXT", help=r"cut plain text files into documents at TEXT, e.g. '\n\n' "
                   "(escapes allowed; default: one file, one document)")
    p.add_argument("--val-fraction", type=float, default=0.1, metavar="F", help="share of documents for val (0.1)")
    p.add_argument("--seed", type=int, default=1337, metavar="S", help="seed of the train/val split (1337)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="encoding processes (default: one per core; 1 for char)")
    p.add_argument("--shard-tokens", type=int, default=100_000_000, metavar="N", help="tokens per shard (100,000,000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def need(args: argparse.Namespace, command: str, *flags: str) -> None:
    """One-line errors for missing flags (argparse's own say it in two lines, with the usage)."""
    for flag in flags:
        if getattr(args, flag.lstrip("-").replace("-", "_")) is None:
            raise LmforgeError(f"{flag} is required; see `lmforge {command} --help`")


def unescape(text: str | None) -> str | None:
    """'\\n\\n' typed in a shell means two newlines."""
    if text is None:
        return None
    try:
        return text.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise LmforgeError(f"--separator {text!r} has a broken escape; write e.g. '\\n\\n' or '---'") from None


def cmd_prepare(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.data.prepare import PrepareOptions, prepare
    from lmforge.data.sources import find_files, iter_texts
    from lmforge.tokenizers import KINDS, tokenizer_from_spec

    need(args, "prepare", "--data", "--tokenizer", "--out")
    options = PrepareOptions(text_field=args.text_field, separator=unescape(args.separator),
                             val_fraction=args.val_fraction, seed=args.seed, workers=args.workers,
                             shard_tokens=args.shard_tokens, progress=not args.no_progress).validate()
    files = find_files(args.data)
    if args.tokenizer in KINDS and sys.stderr.isatty() and not args.no_progress:  # like the progress bar
        print(f"training a {args.tokenizer} tokenizer on {args.data} first", file=sys.stderr)
    tokenizer = tokenizer_from_spec(args.tokenizer, lambda: iter_texts(files, args.text_field, options.separator),
                                    args.vocab_size)
    result = prepare(args.data, tokenizer, args.out, options)
    print(result.summary())
    return 0


# ---------------------------------------------------------------------- tokenizer


def add_tokenizer(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("tokenizer", help="train or inspect a tokenizer",
                       description="Train a tokenizer (char, word or byte-level BPE) or see what one does to a text.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    t = actions.add_parser("train", help="train a tokenizer and save it as one JSON file",
                           description="Train a tokenizer on a file, folder, glob or JSONL and save it as JSON.")
    t.add_argument("--kind", metavar="KIND", help="char | word | bpe")
    t.add_argument("--data", metavar="PATH", help="a text file, a folder, a glob or a JSONL file")
    t.add_argument("--vocab-size", type=int, default=0, metavar="N", help="word and bpe (default 8192)")
    t.add_argument("--out", metavar="FILE", help="the JSON file to write")
    t.add_argument("--text-field", metavar="FIELD", help="read the inputs as JSONL, text in FIELD")
    t.add_argument("--unknown", default="replace", metavar="POLICY", help="char only: what unseen characters "
                   "become: replace (a space), error, or bytes (their UTF-8 bytes: every string round-trips)")
    i = actions.add_parser("inspect", help="tokens per byte, unknown rate, coverage, longest and frequent tokens",
                           description="Encode a text with a tokenizer and report what the vocabulary does to it.")
    i.add_argument("file", metavar="FILE", help="a tokenizer JSON, a run or prepared directory, or GPT-2's files")
    i.add_argument("--data", metavar="PATH", help="a text file, a folder, a glob or a JSONL file")
    i.add_argument("--text-field", metavar="FIELD", help="read the inputs as JSONL, text in FIELD")
    i.add_argument("--top", type=int, default=10, metavar="N", help="how many longest and most frequent tokens (10)")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    for child in (t, i):
        child.formatter_class = argparse.RawDescriptionHelpFormatter
        child.epilog = EXAMPLES["tokenizer"]
    return p


def cmd_tokenizer(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.data.sources import find_files, iter_texts
    from lmforge.tokenizers import tokenizer_from_spec

    if args.action is None:
        raise LmforgeError("say what to do: `lmforge tokenizer train ...` or `lmforge tokenizer inspect ...`")
    if args.action == "train":
        from lmforge.tokenizers import CharTokenizer, train_tokenizer
        from lmforge.tokenizers.char import default_char_specials

        need(args, "tokenizer train", "--kind", "--data", "--out")
        files = find_files(args.data)
        start = time.perf_counter()
        texts = iter_texts(files, args.text_field)
        if args.unknown != "replace" and args.kind != "char":
            raise LmforgeError(f"--unknown applies to --kind char only ({args.kind} needs no policy); leave it out")
        if args.kind == "char" and args.unknown != "replace":
            tok = CharTokenizer.train(texts, unknown=args.unknown, specials=default_char_specials())
        else:
            tok = train_tokenizer(args.kind, texts, args.vocab_size, documents=True)
        tok.save(args.out)
        specials = ", ".join(f"{r}={i}" for r, i in tok.specials.items()) or "none"
        print(f"trained a {tok.kind} tokenizer: {tok.vocab_size:,} tokens (specials: {specials}) in "
              f"{time.perf_counter() - start:.1f} s → {args.out}")
        return 0
    need(args, "tokenizer inspect", "--data")
    if args.top < 1:
        raise LmforgeError(f"--top must be at least 1, not {args.top}")
    from lmforge.tokenizers.inspect import inspect_tokenizer

    tok = tokenizer_from_spec(args.file, flag="FILE")
    report = inspect_tokenizer(tok, iter_texts(find_files(args.data), args.text_field), top=args.top)
    if report.bytes == 0:
        raise LmforgeError(f"--data '{args.data}' holds no text; pass a file with text in it")
    print(json.dumps(report.to_dict(), ensure_ascii=False) if args.json else report.format())
    return 0


# ---------------------------------------------------------------------- compare


def add_compare(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare", help="set runs or model families side by side on the same val text",
        description="Score runs on the same val text (loss, perplexity, bits per byte) and sample from each; or, with "
        "--families, first train each family for the same wall-clock budget. Writes comparison.md and comparison.png.",
    )
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories to compare")
    p.add_argument("--families", metavar="LIST", help="train these families first, e.g. ngram,rnn,transformer "
                   "(each from its compare-FAMILY preset)")
    p.add_argument("--data", metavar="PATH", help="the text: its last 10%% is the val text (with --families, the rest "
                   "is trained on; default: the runs' own training text, or the built-in corpus)")
    p.add_argument("--seconds", type=float, default=120.0, metavar="S", help="training budget per family (default 120)")
    p.add_argument("--out", metavar="DIR", help="where to write (default: runs/compare-TIMESTAMP)")
    p.add_argument("--prompt", default=None, help="prompt for the samples (default: each run's sample prompt)")
    p.add_argument("--max-new-tokens", type=int, default=300, metavar="N", help="tokens per sample (default 300)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    return p


def cmd_compare(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.config import Config
    from lmforge.corpus import load_corpus
    from lmforge.evaluation import compare

    if bool(args.run_dirs) == bool(args.families):
        raise LmforgeError("give either run directories (lmforge compare RUN_DIR...) or --families "
                           "(lmforge compare --families ngram,rnn,transformer --data PATH), not both or neither")
    if args.seconds <= 0:
        raise LmforgeError(f"--seconds must be positive, not {args.seconds}")
    if args.max_new_tokens < 0:
        raise LmforgeError(f"--max-new-tokens must be 0 or more, not {args.max_new_tokens}")
    out = Path(args.out) if args.out else Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.families:
        families = compare.parse_families(args.families)
        for family in families:
            if (out / family).exists():
                raise LmforgeError(f"'{out / family}' already exists; choose a new --out")
        run_dirs = compare.train_families(families, args.data, args.seconds, out, args.device,
                                          log=lambda line: print(line, file=sys.stderr))
        about = (f"Each family trained for at most {args.seconds:g} s on the first 90% of "
                 f"{args.data or 'the built-in corpus'} (`lmforge compare --families {','.join(families)}`); "
                 "val text: the last 10%.")
        data, val_fraction = args.data, 0.1
    else:
        run_dirs = [Path(d) for d in args.run_dirs]
        configs = [Config.from_file(d / "config.yaml") if (d / "config.yaml").is_file() else None for d in run_dirs]
        for d, cfg in zip(run_dirs, configs):
            if cfg is None:
                raise LmforgeError(f"'{d}' has no config.yaml, so it is not a run directory; train one with "
                                   f"`lmforge train --out {d}`")
        data = args.data
        if data is None:
            paths = {cfg.data.path for cfg in configs}
            if len(paths) > 1:
                raise LmforgeError("the runs were trained on different texts; pass --data PATH to score them all on "
                                   "the val split of one text")
            data = paths.pop()
        val_fraction = configs[0].data.val_fraction
        about = (f"Runs {', '.join(str(d) for d in run_dirs)}; val text: the last {val_fraction:.0%} of "
                 f"{data or 'the built-in corpus'}.")
    text, _ = load_corpus(data)
    val_text = compare.val_text_of(text, val_fraction)
    rows = compare.compare_runs(run_dirs, val_text, args.device, max_new_tokens=args.max_new_tokens,
                                prompt=args.prompt)
    md, png = compare.write_comparison(rows, out, about)
    print(compare.comparison_table(rows))
    print(f"wrote {md} and {png}")
    return 0


# ---------------------------------------------------------------------- presets


def add_presets(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    return sub.add_parser("presets", help="list the named presets", description="List the named presets.")


def cmd_presets(args: argparse.Namespace, extra: list[str]) -> int:
    from lmforge.config import preset_names, preset_summary

    names = preset_names()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_summary(name)}")
    return 0


COMMANDS = {
    "train": (add_train, cmd_train),
    "sample": (add_sample, cmd_sample),
    "eval": (add_eval, cmd_eval),
    "probe": (add_probe, cmd_probe),
    "study": (add_study, cmd_study),
    "regress": (add_regress, cmd_regress),
    "report": (add_report, cmd_report),
    "prepare": (add_prepare, cmd_prepare),
    "tokenizer": (add_tokenizer, cmd_tokenizer),
    "compare": (add_compare, cmd_compare),
    "presets": (add_presets, cmd_presets),
}
ACCEPTS_OVERRIDES = {"train"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmforge",
        description="Train language models from scratch on your own text, then sample, evaluate and compare them.",
        epilog="Run `lmforge COMMAND --help` for a command's options and examples.",
    )
    from lmforge import __version__

    parser.add_argument("--version", action="version", version=f"lmforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add, _) in COMMANDS.items():
        p = add(sub)
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        p.epilog = EXAMPLES.get(name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and args.command not in ACCEPTS_OVERRIDES:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.command][1](args, extra)
    except LmforgeError as exc:
        print(f"lmforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lmforge {args.command}: interrupted", file=sys.stderr)
        return 130
