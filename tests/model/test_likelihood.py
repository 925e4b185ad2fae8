"""The one PAL logit: its terms contracted with any weights equal the ideal-point formula
written out directly (squared distances, cosines), for PAL-A and PAL-B, and the rewards
are the logits' building blocks."""

import pytest
import torch
import torch.nn.functional as F

from bayespal.model.likelihood import (
    mixture_logits,
    mixture_rewards,
    pair_terms,
    point_rewards,
    prompt_prototypes,
)


@pytest.fixture
def case():
    g = torch.Generator().manual_seed(0)
    s, b, k, d, q = 5, 7, 3, 4, 2
    return dict(
        protos=torch.randn(s, k, d, generator=g), loadings=torch.randn(s, k, d, q, generator=g),
        beta=torch.rand(s, generator=g) + 0.5, fa=torch.randn(b, d, generator=g),
        fb=torch.randn(b, d, generator=g), pc=torch.randn(b, q, generator=g),
        w=torch.distributions.Dirichlet(torch.ones(k)).sample((s, b)),
    )


def test_distance_logit_is_the_squared_distance_difference(case):
    c = case
    z = torch.einsum("sbk,skd->sbd", c["w"], c["protos"])
    direct = c["beta"][:, None] * ((c["fb"] - z).pow(2).sum(-1) - (c["fa"] - z).pow(2).sum(-1))
    diff, gram = pair_terms(c["protos"], c["beta"], c["fa"], c["fb"], position_bias=0.3)
    assert gram is None
    torch.testing.assert_close(mixture_logits(c["w"], diff), direct + 0.3, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["distance", "cosine"])
def test_prompted_logit_is_the_formula_at_the_prompts_ideal_point(case, metric):
    c = case
    g = prompt_prototypes(c["protos"], c["loadings"], c["pc"])  # (S, B, K, d)
    z = (c["w"].unsqueeze(-1) * g).sum(-2)
    if metric == "cosine":
        direct = F.cosine_similarity(c["fa"], z, dim=-1) - F.cosine_similarity(c["fb"], z, dim=-1)
    else:
        direct = (c["fb"] - z).pow(2).sum(-1) - (c["fa"] - z).pow(2).sum(-1)
    diff, gram = pair_terms(c["protos"], c["beta"], c["fa"], c["fb"], loadings=c["loadings"],
                            pc=c["pc"], metric=metric)
    torch.testing.assert_close(mixture_logits(c["w"], diff, gram), c["beta"][:, None] * direct,
                               rtol=1e-4, atol=1e-4)


def test_rewards_difference_is_the_logit_over_the_sharpness(case):
    c = case
    items = torch.stack([c["fa"][0], c["fb"][0]])
    r = point_rewards(c["protos"], items)  # (S, K, 2)
    diff, _ = pair_terms(c["protos"], c["beta"], c["fa"][:1], c["fb"][:1])
    torch.testing.assert_close(c["beta"][:, None] * (r[..., 0] - r[..., 1]), diff[:, 0],
                               rtol=1e-5, atol=1e-5)
    user = mixture_rewards(c["w"][:, 0], c["protos"], items)  # (S, 2)
    torch.testing.assert_close(user, torch.einsum("sk,skm->sm", c["w"][:, 0], r), rtol=1e-5,
                               atol=1e-5)


def test_prompt_features_are_required_exactly_for_pal_b(case):
    c = case
    with pytest.raises(ValueError, match="prompt"):
        pair_terms(c["protos"], c["beta"], c["fa"], c["fb"], loadings=c["loadings"])
