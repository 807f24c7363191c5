"""The playground: the page at `/` (plain HTML, CSS and JavaScript shipped in the package: no build step, no CDN,
works offline) and the JSON endpoints it needs beyond `/v1/completions`.

The endpoints live under `/v1/playground/` so that `--api-key` guards them as it guards the rest of the API
(the page sends the key it is given); the page and its static files are public, as they hold no data.

    GET  /v1/playground/runs                 the served runs: config, curves from metrics.jsonl, report link
    GET  /v1/playground/runs/{name}/report   the run's report.html (`lmforge report`), when it has one
    POST /v1/playground/distribution         next-token probabilities before and after the decoding settings
    POST /v1/playground/inspect              each token's surprisal in bits, and the text's bits per byte
    POST /v1/playground/attention            a transformer's attention weights for one layer and head

Bad input gets the OpenAI-shaped 4xx error of the rest of the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from lmforge.serving import inspection
from lmforge.serving.app import MAX_PROMPT_TOKENS, ApiError, decode, pick_model
from lmforge.serving.schema import CompletionRequest

if TYPE_CHECKING:
    from lmforge.run import Run

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
MAX_TOP = 200  # bars the distribution endpoint returns at most
MAX_CURVE_POINTS = 400  # per curve: a long run's metrics.jsonl is thinned evenly, the last point kept
REPORT_FILE = "report.html"


class DistributionRequest(CompletionRequest):
    """A completion request's decoding settings, at one position: after `prompt` + `completion`."""

    prompt: str
    completion: str = ""  # the text generated before the position shown
    top: int = Field(20, ge=1, le=MAX_TOP)


class InspectRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    text: str


class AttentionRequest(InspectRequest):
    layer: int = 0
    head: int = 0
    position: int | None = None  # the token whose attention is shown; None: the last


def router(runs: dict[str, Run]) -> APIRouter:
    """The page and its endpoints for `runs` (name → loaded run)."""
    api = APIRouter()

    @api.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @api.get("/playground/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = STATIC / name
        if Path(name).name != name or path.suffix not in MEDIA_TYPES or not path.is_file():
            raise ApiError(404, f"the playground has no file '{name}'", code="not_found")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix])

    @api.get("/v1/playground/runs")
    def list_runs() -> dict[str, Any]:
        return {"runs": [describe(name, run) for name, run in runs.items()]}

    @api.get("/v1/playground/runs/{name}/report")
    def report(name: str) -> HTMLResponse:
        run = runs[pick_model(runs, name)]
        path = run.path / REPORT_FILE
        if not path.is_file():
            raise ApiError(404, f"the run '{name}' has no {REPORT_FILE}; write one with `lmforge report {run.path}`",
                           code="not_found")
        return HTMLResponse(path.read_text(encoding="utf-8"))

    @api.post("/v1/playground/distribution")
    def distribution(req: DistributionRequest) -> dict[str, Any]:
        run = runs[pick_model(runs, req.model)]
        check_length(run, req.prompt + req.completion, "prompt")
        cfg = decode(run, run.decode_config, 1, **req.decoding())
        return decode(run, inspection.next_token_distribution, run, req.prompt, req.completion, cfg, req.top)

    @api.post("/v1/playground/inspect")
    def inspect(req: InspectRequest) -> dict[str, Any]:
        name = pick_model(runs, req.model)
        run = runs[name]
        check_length(run, req.text, "text")
        return {"model": name, **decode(run, inspection.surprisal, run, req.text),
                "attention": inspection.attention_shape(run)}

    @api.post("/v1/playground/attention")
    def attention(req: AttentionRequest) -> dict[str, Any]:
        run = runs[pick_model(runs, req.model)]
        check_length(run, req.text, "text")
        return decode(run, inspection.attention_weights, run, req.text, req.layer, req.head, req.position)

    return api


def check_length(run: Run, text: str, param: str) -> None:
    n = len(run.tokenizer.encode(text))
    if n > MAX_PROMPT_TOKENS:
        raise ApiError(400, f"'{param}' is {n:,} tokens; the playground reads at most {MAX_PROMPT_TOKENS:,}",
                       param=param, code="context_length_exceeded")


def describe(name: str, run: Run) -> dict[str, Any]:
    """What the Runs tab shows of one run."""
    return {"name": name, "path": str(run.path), "description": run.model.describe(),
            "family": run.model.family, "params": run.model.num_params(), "tokenizer": run.tokenizer.kind,
            "vocab_size": run.tokenizer.vocab_size, "context": run.model.context_size,
            "attention": inspection.attention_shape(run), "config": run.config.to_dict(),
            "curves": curves(run.path / "metrics.jsonl"),
            "report": f"/v1/playground/runs/{name}/report" if (run.path / REPORT_FILE).is_file() else None}


def curves(path: Path) -> dict[str, list[list[float]]]:
    """[step, value] points of the training loss (train events) and validation loss (eval events) of a
    metrics.jsonl; a line that is not JSON (a run still writing it) is skipped."""
    out: dict[str, list[list[float]]] = {"train_loss": [], "val_loss": []}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        event, step = record.get("event"), record.get("step")
        value = record.get("loss") if event == "train" else record.get("val_loss") if event == "eval" else None
        if isinstance(step, (int, float)) and isinstance(value, (int, float)):
            out["train_loss" if event == "train" else "val_loss"].append([step, value])
    return {key: thin(points, MAX_CURVE_POINTS) for key, points in out.items()}


def thin(points: list, most: int) -> list:
    if len(points) <= most:
        return points
    step = len(points) / (most - 1)
    return [points[int(i * step)] for i in range(most - 1)] + [points[-1]]
