"""The decode loop: ragged batches, seeds, EOS, penalties, and every model family."""

import pytest
import torch
from torch import nn

from lmforge.config import DecodeConfig, ModelConfig
from lmforge.generation import decode, generate_ids
from lmforge.models import FAMILIES, LanguageModel, build_model

pytestmark = pytest.mark.usefixtures("one_thread")

V = 23


def transformer(block_size=64):
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=block_size), V).eval()
    with torch.no_grad():  # sharper logits than a fresh init, so greedy choices are far from ties
        model.tok_emb.weight.mul_(20)
    return model


class Bigram(LanguageModel):
    """A model that cannot mask padding: the last token alone picks the logits."""

    family = "bigram-test"

    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(V, V)
        nn.init.normal_(self.table.weight, std=3.0, generator=torch.Generator().manual_seed(0))

    def forward(self, ids):
        return self.table(ids)


def run(model, prompts, **options):
    cfg = DecodeConfig(**options)
    steps = list(decode(model, prompts, cfg, generators=options.pop("generators", None)))
    return torch.stack([s.ids for s in steps], dim=1), steps  # (B, new)


PROMPTS = [[3, 1, 4, 1, 5, 9, 2, 6], [5], [3, 5, 8, 9], [7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3]]


@pytest.mark.parametrize(("model_kind", "mode"), [("transformer", "eager"), ("transformer", "static"), ("bigram", "eager")])
def test_a_ragged_batch_decodes_exactly_like_each_prompt_alone(model_kind, mode):  # the static path is the transformer's
    model = transformer() if model_kind == "transformer" else Bigram()
    together, _ = run(model, PROMPTS, max_new_tokens=40, greedy=True, mode=mode)
    for r, prompt in enumerate(PROMPTS):
        alone, _ = run(model, [prompt], max_new_tokens=40, greedy=True, mode=mode)
        assert together[r].tolist() == alone[0].tolist(), f"prompt {r}"


def test_sampling_with_one_generator_per_row_matches_each_row_alone():
    model = transformer()
    gens = [torch.Generator().manual_seed(100 + r) for r in range(len(PROMPTS))]
    cfg = DecodeConfig(max_new_tokens=30, temperature=1.5, top_p=0.95)
    together = torch.stack([s.ids for s in decode(model, PROMPTS, cfg, generators=gens)], 1)
    for r, prompt in enumerate(PROMPTS):
        g = torch.Generator().manual_seed(100 + r)
        alone = torch.stack([s.ids for s in decode(model, [prompt], cfg, generators=[g])], 1)
        assert together[r].tolist() == alone[0].tolist()


def test_sampling_is_reproducible_with_a_seed_and_varies_without():
    model = transformer()
    cfg = DecodeConfig(max_new_tokens=30, temperature=2.0)

    def sample(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.stack([s.ids for s in decode(model, [[1, 2, 3]], cfg, generators=g)], 1).tolist()

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


@pytest.mark.parametrize("block_size", [64, 16])  # 16: the 8 + 30 tokens run past the context
def test_cached_decoding_equals_decoding_without_a_cache(block_size):
    """The transformer's cached step against the model-agnostic default step (recompute each time)."""
    model = transformer(block_size)
    cached, _ = run(model, [PROMPTS[0]], max_new_tokens=30, greedy=True)
    ids = torch.tensor([PROMPTS[0]])
    for _ in range(30):
        ids = torch.cat([ids, model(ids[:, -block_size:])[:, -1].argmax(-1, keepdim=True)], 1)
    assert cached[0].tolist() == ids[0, len(PROMPTS[0]) :].tolist()


def test_eos_ends_each_row_and_then_the_loop():
    model = Bigram()
    with torch.no_grad():  # token 4 always leads to 7, 7 to 7 (EOS); 2 leads to 4
        model.table.weight.zero_()
        model.table.weight[2, 4] = model.table.weight[4, 7] = model.table.weight[7, 7] = 10.0
        model.table.weight[1, 1] = 10.0  # 1 leads to 1 forever
    ids, steps = run(model, [[2], [1], [4]], max_new_tokens=6, greedy=True, eos_id=7)
    assert ids[0, :2].tolist() == [4, 7] and ids[2, 0].item() == 7
    assert [s.alive.tolist() for s in steps[:3]] == [[True, True, True], [True, True, False], [False, True, False]]
    assert len(steps) == 6  # row 1 never ends, so the limit does
    _, steps = run(model, [[2], [4]], max_new_tokens=6, greedy=True, eos_id=7)
    assert len(steps) == 2  # every row has ended
    # ragged prompts, so row by row: a row that has ended shows EOS there too, and is not alive
    ids, steps = run(model, [[2], [3, 1], [5, 4]], max_new_tokens=3, greedy=True, eos_id=7)
    assert ids.tolist() == [[4, 7, 7], [1, 1, 1], [7, 7, 7]]
    assert [s.alive.tolist() for s in steps] == [[True, True, True], [True, True, False], [False, True, False]]


def test_no_model_call_for_the_token_after_the_last():
    model, calls = Bigram(), []
    step = model.step
    model.step = lambda *args: calls.append(1) or step(*args)
    run(model, [[1, 2]], max_new_tokens=4, greedy=True)
    assert len(calls) == 4  # the prompt, then the 1st, 2nd and 3rd new tokens; the 4th is only yielded


def test_banned_tokens_never_appear_and_repetition_penalty_avoids_repeats():
    model = transformer()
    free, _ = run(model, [[1, 2]], max_new_tokens=40, greedy=True)
    common = free[0].mode().values.item()
    banned, _ = run(model, [[1, 2]], max_new_tokens=40, greedy=True, banned_ids=(common,))
    assert common not in banned[0].tolist()
    penalized, _ = run(model, [[1, 2]], max_new_tokens=15, greedy=True, repetition_penalty=1e6)
    assert len(set(penalized[0].tolist())) == 15, "a huge penalty makes every new token one not seen before"


def test_logprobs_are_the_models_own():
    model = transformer()
    cfg = DecodeConfig(max_new_tokens=3, greedy=True, repetition_penalty=5.0)
    steps = list(decode(model, [PROMPTS[2]], cfg, logprobs=4))
    ids = torch.tensor([PROMPTS[2] + [int(s.ids[0]) for s in steps]])
    logp = torch.log_softmax(model(ids)[0], -1)
    for t, s in enumerate(steps):
        row = logp[len(PROMPTS[2]) - 1 + t]
        assert s.logprobs[0].item() == pytest.approx(row[s.ids[0]].item(), abs=1e-5)
        assert s.top_ids[0].tolist() == row.topk(4).indices.tolist()
        assert torch.allclose(s.top_logprobs[0], row.topk(4).values, atol=1e-5)  # log-probabilities, not logits
    [only] = decode(model, [PROMPTS[2]], DecodeConfig(max_new_tokens=1, greedy=True), logprobs=0)
    assert only.logprobs is not None and only.top_ids is None and only.top_logprobs is None  # 0: no alternatives


def test_only_identical_prompts_share_a_prefill():
    """Two prompts of one length that end alike are still two prompts (a check of the last column shared them)."""
    model = transformer()
    prompts, cfg = [[1, 2, 3], [4, 5, 3]], DecodeConfig(max_new_tokens=1, greedy=True)
    [together] = decode(model, prompts, cfg, logprobs=3)
    alone = [next(decode(model, [p], cfg, logprobs=3)).top_logprobs[0] for p in prompts]
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)
    assert torch.allclose(together.top_logprobs, torch.stack(alone), atol=1e-5)


def test_repetition_penalty_counts_every_prompt_token_the_first_included():
    model = Bigram()
    with torch.no_grad():  # after 1: 1 (logit 10) or 2 (logit 5); a penalty of 4 turns a seen 1 into 2.5
        model.table.weight.zero_()
        model.table.weight[1, 1], model.table.weight[1, 2] = 10.0, 5.0
    assert run(model, [[1]], max_new_tokens=1, greedy=True)[0].tolist() == [[1]]
    assert run(model, [[1]], max_new_tokens=1, greedy=True, repetition_penalty=4.0)[0].tolist() == [[2]]


def test_several_samples_of_one_prompt_share_its_prefill():
    model = transformer()
    gens = [torch.Generator().manual_seed(r) for r in range(3)]
    cfg = DecodeConfig(max_new_tokens=20, temperature=1.3)
    batch = torch.stack([s.ids for s in decode(model, [PROMPTS[0]] * 3, cfg, generators=gens)], 1)
    for r in range(3):
        alone = torch.stack([s.ids for s in decode(model, [PROMPTS[0]], cfg,
                                                   generators=[torch.Generator().manual_seed(r)])], 1)
        assert batch[r].tolist() == alone[0].tolist()


def test_generate_ids_keeps_its_old_interface():
    model = transformer()
    ids = torch.tensor([PROMPTS[0]])
    out = [t for t in generate_ids(model, ids, 10, greedy=True)]
    assert len(out) == 10 and out[0].shape == (1,)
    assert torch.stack(out, 1)[0].tolist() == run(model, [PROMPTS[0]], max_new_tokens=10, greedy=True)[0][0].tolist()
    bigram, chain = Bigram(), [3]  # temperature 0 means greedy: each token the argmax of its row of the table
    for _ in range(20):
        chain.append(int(bigram.table.weight[chain[-1]].argmax()))
    cold = torch.stack(list(generate_ids(bigram, torch.tensor([[3]]), 20, temperature=0.0)), 1)
    assert cold[0].tolist() == chain[1:]


def test_decoding_leaves_a_training_model_in_training_mode():
    model = transformer().train()
    run(model, [[1]], max_new_tokens=2)
    assert model.training


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_steps_like_a_full_forward(family):
    torch.manual_seed(0)
    model = build_model(ModelConfig(family=family, n_layer=2, n_head=2, n_embd=16, block_size=32), V).eval()
    ids = torch.randint(V, (2, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, state = model.step(ids[:, :5], model.new_state(2, 30))
        for t in range(5, 30):
            assert torch.allclose(logits, model(ids[:, :t])[:, -1], atol=1e-4), f"step {t}"
            logits, state = model.step(ids[:, t : t + 1], state)
