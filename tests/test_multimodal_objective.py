"""Eq. (19) on toy cases: pair sampling, prediction orders, and what each target's prediction may depend on."""
from __future__ import annotations

import pytest
import torch

from biglearn.multimodal.config import DigitsModelConfig, preset
from biglearn.multimodal.objective import LABEL, attention_mask, pairs_from_sources, sample_pairs, target_slots
from biglearn.multimodal.trainer import embed_codes_from_codebook, eq19_loss
from biglearn.multimodal.transformer import AnyOrderTransformer

LENGTH = DigitsModelConfig().length   # 50 = y + 7x7 tokens


def toy_sources() -> torch.Tensor:
    is_source = torch.zeros(4, LENGTH, dtype=torch.bool)
    is_source[1, [0, 5, 9]] = True            # y and two image tokens
    is_source[2, 1:] = True                   # classification: S' = x
    is_source[3, 3] = True
    return is_source


def visible_positions(order: torch.Tensor, num_source: torch.Tensor, row: int, slot: int) -> set[int]:
    """Positions whose values the prediction at `slot` can read: slot j >= 1 holds X[order[j - 1]]."""
    mask = attention_mask(num_source, LENGTH)[row, slot]
    return {int(order[row, j - 1]) for j in range(1, LENGTH) if mask[j]}


def test_each_target_sees_exactly_the_sources_and_the_earlier_targets():
    is_source = toy_sources()
    order, num_source = pairs_from_sources(is_source, torch.Generator().manual_seed(0))
    for row in range(len(is_source)):
        m = int(num_source[row])
        sources = set(torch.nonzero(is_source[row]).flatten().tolist())
        assert m == len(sources)
        assert set(order[row, :m].tolist()) == sources
        assert order[row, :m].tolist() == sorted(sources)          # S' has no internal order
        assert sorted(order[row].tolist()) == list(range(LENGTH))  # T' = L' minus S', each position once
        targets = order[row, m:].tolist()
        for k, target in enumerate(targets):
            slot = m + k                                            # the slot that predicts t_(k+1)
            assert int(order[row, slot]) == target
            assert visible_positions(order, num_source, row, slot) == sources | set(targets[:k])
        assert target_slots(num_source, LENGTH)[row].tolist() == [j >= m for j in range(LENGTH)]


def test_orders_are_random_permutations_of_the_targets():
    is_source = torch.zeros(2000, LENGTH, dtype=torch.bool)
    order, _ = pairs_from_sources(is_source, torch.Generator().manual_seed(1))
    first = torch.bincount(order[:, 0], minlength=LENGTH).float() / len(order)
    assert first.min() > 0.5 / LENGTH and first.max() < 2 / LENGTH    # every position can come first


def test_label_first_puts_y_at_the_first_target_slot():
    is_source = toy_sources()
    order, num_source = pairs_from_sources(is_source, label_first=True)
    for row in (0, 2, 3):                                           # rows where y is a target
        assert int(order[row, num_source[row]]) == LABEL


def test_a_pair_without_targets_is_refused():
    with pytest.raises(ValueError, match="T' is empty"):
        pairs_from_sources(torch.ones(1, LENGTH, dtype=torch.bool))


def test_pair_sampler_statistics():
    cfg = preset("demo")
    order, num_source = sample_pairs(20_000, cfg, torch.Generator().manual_seed(0))
    m = num_source
    assert (m < LENGTH).all()                                       # T' never empty
    is_source = torch.arange(LENGTH)[None] < m[:, None]
    source_positions = torch.zeros_like(is_source).scatter_(1, order, is_source)
    classify = source_positions[:, 1:].all(dim=1) & ~source_positions[:, LABEL]
    assert abs(classify.float().mean().item() - cfg.classify_prob) < 0.01
    rest = ~classify
    assert abs(source_positions[rest, LABEL].float().mean().item() - cfg.label_source_prob) < 0.02
    image_share = source_positions[rest, 1:].float().mean().item()
    a, b = cfg.source_beta
    assert abs(image_share - a / (a + b)) < 0.02                    # Beta mean of |S' ∩ x| / 49
    assert (m[rest] == 0).float().mean() > 0.02                     # joint generation pairs occur


def test_prediction_depends_only_on_sources_and_earlier_targets():
    torch.manual_seed(0)
    cfg = DigitsModelConfig(codebook_size=16, code_dim=4, tok_channels=4, dim=32, depth=2, heads=2)
    model = AnyOrderTransformer(cfg).eval()
    is_source = toy_sources()[1:2]
    order, num_source = pairs_from_sources(is_source, torch.Generator().manual_seed(3))
    tokens = torch.randint(0, 16, (1, LENGTH))
    tokens[0, LABEL] = 16 + 4
    base = model(tokens, order, num_source)
    m, k = int(num_source), 5
    changed = tokens.clone()
    position = int(order[0, m + k])                                  # t_(k+1)
    changed[0, position] = (changed[0, position] + 1) % 16
    after = model(changed, order, num_source)
    assert torch.equal(after[0, :m + k + 1], base[0, :m + k + 1])    # t_1..t_(k+1) cannot see it
    assert not torch.allclose(after[0, m + k + 1:], base[0, m + k + 1:])  # later targets do
    source = int(order[0, 0])
    changed = tokens.clone()
    changed[0, source] = 16 + 7 if source == LABEL else (tokens[0, source] + 1) % 16
    assert not torch.allclose(model(changed, order, num_source)[0, m], base[0, m])  # t_1 sees S'


def test_truncated_slots_match_the_full_forward():
    torch.manual_seed(0)
    cfg = DigitsModelConfig(codebook_size=16, code_dim=4, tok_channels=4, dim=32, depth=2, heads=2)
    model = AnyOrderTransformer(cfg).eval()
    order, num_source = pairs_from_sources(toy_sources()[[0, 1, 3]], torch.Generator().manual_seed(2))
    tokens = torch.randint(0, 16, (3, LENGTH))
    tokens[:, LABEL] = 16 + torch.arange(3)
    full = model(tokens, order, num_source)
    n = int(num_source.max()) + 3
    torch.testing.assert_close(model(tokens, order, num_source, slots=n), full[:, :n])


def test_eq19_loss_is_the_target_sum_over_the_batch():
    torch.manual_seed(0)
    cfg = DigitsModelConfig(codebook_size=16, code_dim=4, tok_channels=4, dim=32, depth=1, heads=2)
    model = AnyOrderTransformer(cfg)
    order, num_source = pairs_from_sources(toy_sources(), torch.Generator().manual_seed(2))
    tokens = torch.randint(0, 16, (4, LENGTH))
    tokens[:, LABEL] = 16 + torch.arange(4)
    loss, stats = eq19_loss(model, tokens, order, num_source)
    log_probs = model(tokens, order, num_source).log_softmax(dim=-1)
    expected = 0.0
    for row in range(4):
        for slot in range(int(num_source[row]), LENGTH):
            expected -= log_probs[row, slot, tokens[row, order[row, slot]]]
    torch.testing.assert_close(loss, expected / (4 * LENGTH))
    # label_weight scales the label's terms alone: the weighted loss minus Eq. (19) is (w - 1) x the label part.
    is_label = order == LABEL
    used = torch.arange(LENGTH)[None, :] >= num_source[:, None]
    label_part = -(log_probs.gather(2, tokens.gather(1, order)[..., None])[..., 0] * (used & is_label)).sum()
    weighted, _ = eq19_loss(model, tokens, order, num_source, label_weight=3.0)
    torch.testing.assert_close(weighted - loss, 2.0 * label_part / (4 * LENGTH))
    # Wrong-modality entries are impossible: y only takes labels, image tokens only codes.
    probs = log_probs.exp()
    label_slot = (order == LABEL)
    assert probs[label_slot][:, :16].sum() == 0 and probs[~label_slot][:, 16:].sum() == 0


def test_cached_sampling_passes_equal_the_full_forward_at_every_slot():
    """prefill + one extend per slot (the sampler's key/value cache) gives the logits of the full pass."""
    cfg = DigitsModelConfig(codebook_size=16, dim=32, depth=2, heads=2)
    torch.manual_seed(0)
    model = AnyOrderTransformer(cfg).eval()
    is_source = toy_sources()
    is_source[2, 7] = False                   # every row must keep a target; row 2: all but one image token
    order, num_source = pairs_from_sources(is_source, torch.Generator().manual_seed(1))
    tokens = torch.randint(cfg.codebook_size, (4, LENGTH))
    tokens[:, 0] = cfg.codebook_size + torch.randint(10, (4,))
    rows = torch.arange(4)
    with torch.no_grad():
        full = model(tokens, order, num_source)
        logits, cache = model.prefill(tokens, order, num_source)
        torch.testing.assert_close(logits, full[rows, num_source], rtol=1e-4, atol=1e-5)
        for k in range(1, LENGTH - int(num_source.min())):
            slot = (num_source + k).clamp(max=LENGTH - 1)
            torch.testing.assert_close(model.extend(tokens, order, num_source, slot, cache), full[rows, slot],
                                       rtol=1e-4, atol=1e-5)


def test_code_embeddings_from_the_codebook_keep_its_geometry():
    cfg = DigitsModelConfig(codebook_size=16, code_dim=4, tok_channels=4, dim=32, depth=1, heads=2)
    torch.manual_seed(0)
    model = AnyOrderTransformer(cfg)
    labels_before = model.token_embed.weight[16:].clone()
    codebook = torch.randn(16, 4)
    codebook[3] = codebook[7]                                   # two codes that decode alike
    embed_codes_from_codebook(model, codebook)
    codes = model.token_embed.weight[:16]
    torch.testing.assert_close(codes[3], codes[7])
    assert abs(codes.std().item() - 0.02) < 1e-4                  # the usual initial scale
    distances = torch.cdist(codebook, codebook).flatten()
    embedded = torch.cdist(codes, codes).flatten()
    assert torch.corrcoef(torch.stack([distances, embedded]))[0, 1] > 0.5   # near codes stay near
    torch.testing.assert_close(model.token_embed.weight[16:], labels_before)  # labels untouched
