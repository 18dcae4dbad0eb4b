"""Conditioning: MiniLM text embeddings, caption cache reuse/invalidation, field conditions."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genphys.conditioning import (
    CaptionCache,
    TextEncoder,
    TextEncoderConfig,
    first_frames,
    params_vector,
    random_observation_mask,
    sparse_observations,
    to_model_space,
)
from genphys.diffusion import WaveletRepresentation
from genphys.errors import UserInputError

PROMPTS = ["Burgers flow with viscosity 0.01", "Burgers simulation, viscosity 0.01",
           "a cat on a mat"]


@pytest.fixture(scope="module")
def enc():
    return TextEncoder(TextEncoderConfig(max_length=16))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, enc):
    """A tiny random BERT with the MiniLM tokenizer, saved as a local transformers directory."""
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=enc.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    d = tmp_path_factory.mktemp("tiny_bert")
    BertModel(cfg).save_pretrained(d)
    enc.tokenizer.save_pretrained(d)
    return str(d)


def test_default_model_shapes_normalized_and_frozen(enc):
    e = enc.encode(PROMPTS)
    b, length, d = e.tokens.shape
    assert (b, d) == (3, 384) and e.mask.shape == (3, length) and e.pooled.shape == (3, 384)
    assert e.mask.dtype == torch.bool and e.tokens.dtype == torch.float32
    assert torch.allclose(e.pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.model.training
    enc.train()  # a frozen encoder stays in eval mode (no dropout)
    assert not enc.model.training
    enc.eval()


def test_similar_sentences_are_closer_and_encoding_is_deterministic(enc):
    p = enc.encode(PROMPTS).pooled
    sim = p @ p.T  # (3, 3) cosine similarities (pooled is unit norm)
    print("cosine similarities", sim[0, 1].item(), sim[0, 2].item(), sim[1, 2].item())
    assert sim[0, 1] > 0.7 and sim[0, 1] > sim[0, 2] + 0.4 and sim[0, 1] > sim[1, 2] + 0.4
    assert torch.equal(enc.encode(PROMPTS).pooled, p)


def test_mean_pooling_matches_sentence_transformers_convention(enc):
    e = enc.encode(PROMPTS)
    ref = enc.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = enc.model(**ref).last_hidden_state  # (B, L, D)
    m = ref["attention_mask"][..., None].float()
    expect = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    assert torch.allclose(e.pooled, expect, atol=1e-6)


def test_padding_mask_and_per_sample_independence(enc):
    e = enc.encode(PROMPTS)
    n_tok = [len(enc.tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert e.mask.sum(1).tolist() == n_tok and e.tokens.shape[1] == max(n_tok)
    assert e.mask[:, 0].all() and (e.tokens[~e.mask] == 0).all()
    fixed = enc.encode(PROMPTS, fixed_length=True)
    assert fixed.tokens.shape[1] == 16
    for i, p in enumerate(PROMPTS):  # alone, in a batch, padded to the fixed length
        alone = enc.encode([p])
        n = n_tok[i]
        assert torch.allclose(alone.pooled[0], e.pooled[i], atol=1e-5)
        assert torch.allclose(alone.tokens[0, :n], e.tokens[i, :n], atol=1e-5)
        assert torch.allclose(fixed.pooled[i], e.pooled[i], atol=1e-5)


def test_empty_prompt_and_truncation_warning(enc):
    for bad in ([""], ["ok", "   "], [], "a string"):
        with pytest.raises(UserInputError):
            enc.encode(bad)
    long = " ".join(["viscous"] * 40)
    with pytest.warns(UserWarning, match="max_length=16"):
        e = enc.encode([long])
    assert e.tokens.shape[1] == 16 and e.mask.all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.encode(["short prompt"])  # no warning under the limit


def test_bad_config_values():
    for kw in (dict(max_length=1), dict(pooling="max"), dict(model="")):
        with pytest.raises(UserInputError):
            TextEncoderConfig(**kw)
    with pytest.raises(UserInputError, match="unknown text encoder keys"):
        TextEncoderConfig.from_dict({"modle": "default"})
    assert TextEncoderConfig.from_dict(TextEncoderConfig().to_dict()) == TextEncoderConfig()


def test_local_path_cls_pooling_dtype_and_fine_tuning(tiny_dir):
    tiny = TextEncoder(TextEncoderConfig(model=tiny_dir, pooling="cls", normalize=False))
    e = tiny.encode(PROMPTS)
    assert e.tokens.shape[2] == 32 and torch.equal(e.pooled, e.tokens[:, 0])
    e64 = tiny.double().encode(PROMPTS)
    assert e64.tokens.dtype == torch.float64 and torch.allclose(e64.pooled.float(), e.pooled,
                                                                atol=1e-5)
    ft = TextEncoder(TextEncoderConfig(model=tiny_dir, trainable=True)).train()
    assert ft.model.training
    ft.encode(PROMPTS).pooled.sum().backward()
    grads = [p.grad is not None for p in ft.parameters()]
    assert sum(grads) > 0.9 * len(grads)  # all but unused pooler weights get gradients


def _count_calls(enc):
    calls = []
    handle = enc.model.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


def test_caption_cache_reuse_and_invalidation(enc, tiny_dir, tmp_path):
    caps = PROMPTS + ["Shock forms at t=0.4."]
    calls, h = _count_calls(enc)
    cache = CaptionCache(enc, tmp_path, batch_size=2)
    path = cache.build(caps)
    assert len(calls) == 2 and path.is_file() and len(cache) == 4
    got = cache.get([caps[2], caps[0], caps[2]])
    ref = enc.encode([caps[2], caps[0]], fixed_length=True)
    n = len(calls)
    assert got.tokens.shape == (3, 16, 384) and torch.equal(got.tokens[0], got.tokens[2])
    assert torch.allclose(got.pooled[:2], ref.pooled, atol=1e-6)
    assert torch.equal(got.mask[:2], ref.mask)
    # a second cache over the same file encodes nothing
    again = CaptionCache(enc, tmp_path)
    assert again.build(reversed(caps)) == path and len(calls) == n
    assert torch.equal(again.get(caps).tokens, cache.get(caps).tokens) and len(calls) == n
    again.get(["a new caption"])  # a miss is encoded once, then remembered
    again.get(["a new caption", caps[0]])
    assert len(calls) == n + 1
    h.remove()
    # another model, or the same model with another pooling, writes a different file
    tiny = TextEncoder(TextEncoderConfig(model=tiny_dir, max_length=16))
    c2 = CaptionCache(tiny, tmp_path)
    p2 = c2.build(caps)
    assert p2 != path and c2.get(caps[:1]).tokens.shape == (1, 16, 32)
    tiny_cls = TextEncoder(TextEncoderConfig(model=tiny_dir, max_length=16, pooling="cls"))
    calls, h = _count_calls(tiny_cls)
    c3 = CaptionCache(tiny_cls, tmp_path)
    assert c3.build(caps) not in (path, p2) and len(calls) == 1  # re-encoded, not reused
    assert torch.equal(c3.get(caps).tokens, c2.get(caps).tokens)  # same model, same tokens
    assert not torch.allclose(c3.get(caps).pooled, c2.get(caps).pooled)
    h.remove()
    with pytest.raises(UserInputError, match="frozen"):
        CaptionCache(TextEncoder(TextEncoderConfig(model=tiny_dir, trainable=True)), tmp_path)


def test_caption_cache_rejects_a_tampered_file(enc, tmp_path):
    cache = CaptionCache(enc, tmp_path)
    path = cache.build(PROMPTS[:2])
    path.write_bytes(b"not a safetensors file")
    fresh = CaptionCache(enc, tmp_path)
    with pytest.warns(UserWarning, match="re-encoding"):
        assert fresh.build(PROMPTS[:2]) == path
    assert torch.allclose(fresh.get(PROMPTS[:1]).pooled, cache.get(PROMPTS[:1]).pooled)


# ----------------------------------------------------------------------- field conditions
@pytest.mark.parametrize("space", [(8,), (4, 6)])
def test_first_frames_values_and_mask(space):
    x = torch.randn(3, 2, 5, *space)
    cond, mask = first_frames(x, 2)
    assert mask.shape == (3, 1, 5, *space)
    assert (mask[:, :, :2] == 1).all() and (mask[:, :, 2:] == 0).all()
    assert torch.equal(cond[:, :, :2], x[:, :, :2]) and (cond[:, :, 2:] == 0).all()
    for k in (0, 6, 1.5):
        with pytest.raises(UserInputError):
            first_frames(x, k)


def test_sparse_observations_points_and_masks():
    x = torch.randn(2, 3, 4, 8)
    pts = torch.tensor([[0, 1], [3, 7], [2, 0]])  # (N, 1+d) (t, x) rows
    cond, mask = sparse_observations(x, pts)
    assert mask.shape == (2, 1, 4, 8) and mask.sum() == 6
    for t, i in pts.tolist():
        assert torch.equal(cond[:, :, t, i], x[:, :, t, i]) and (mask[:, 0, t, i] == 1).all()
    assert (cond * (1 - mask) == 0).all()
    per = torch.tensor([[[0, 0]], [[1, 5]]])  # (B, N, 1+d): one point per sample
    _, m2 = sparse_observations(x, per)
    assert m2[0, 0, 0, 0] == 1 and m2[1, 0, 1, 5] == 1 and m2.sum() == 2
    boolmask = torch.zeros(1, 3, 4, 8, dtype=torch.bool)
    boolmask[0, 1, 2, 3] = True
    c3, m3 = sparse_observations(x, boolmask)
    assert m3.shape == (2, 3, 4, 8) and c3[:, 1, 2, 3].equal(x[:, 1, 2, 3]) and c3.abs().sum() \
        == x[:, 1, 2, 3].abs().sum()
    for bad in (torch.tensor([[4, 0]]), torch.tensor([[0.5, 1.0]]), torch.tensor([[0, 1, 2]])):
        with pytest.raises(UserInputError):
            sparse_observations(x, bad)


def test_random_observation_mask_counts_frames_and_per_sample_seeding():
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    m = random_observation_mask((3, 2, 6, 4, 5), 7, gens, frames=[1, 4])
    assert m.shape == (3, 1, 6, 4, 5) and m.sum((1, 2, 3, 4)).tolist() == [7, 7, 7]
    assert m[:, :, [0, 2, 3, 5]].sum() == 0
    alone = random_observation_mask((1, 2, 6, 4, 5), 7,
                                    [torch.Generator().manual_seed(2)], frames=[1, 4])
    assert torch.equal(alone[0], m[1])  # sample 1 does not depend on its batch
    assert not torch.equal(m[0], m[1])
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(random_observation_mask((2, 1, 4, 8), 5, g1),
                       random_observation_mask((2, 1, 4, 8), 5, g2))
    with pytest.raises(UserInputError):
        random_observation_mask((2, 1, 4, 8), 33)


def test_params_vector_matches_trainer_transform():
    p = params_vector({"nu": [0.01, 0.001], "amp": 2.0}, ["nu", "amp", "k"], transform="log10")
    expect = torch.log10(torch.tensor([[0.01, 2.0, float("nan")], [0.001, 2.0, float("nan")]]))
    assert p.dtype == torch.float32 and torch.allclose(p, expect, equal_nan=True)
    q = params_vector({"nu": np.array([0.01]), "amp": 2.0}, ["nu", "amp"],
                      transform={"nu": "log10"})
    assert torch.allclose(q, torch.tensor([[-2.0, 2.0]]))
    for kw in (dict(params={"mu": 1.0}), dict(params={"nu": -1.0}),
               dict(params={"nu": 1.0}, transform="ln")):
        with pytest.raises(UserInputError):
            params_vector(names=["nu"], **{"transform": "log10", **kw})


@pytest.mark.parametrize("level", [0, 1, 2])
def test_to_model_space_encodes_cond_and_max_pools_mask(level):
    rep = WaveletRepresentation("haar", level, axes=(-2, -1))
    x = torch.randn(2, 3, 8, 16, dtype=torch.float64)
    cond, mask = sparse_observations(x, torch.tensor([[0, 0], [5, 9]]))
    c, m = to_model_space(cond, mask, rep)
    assert c.shape == rep.shape(x.shape) and m.shape == (2, 1, 8 >> level, 16 >> level)
    assert torch.allclose(rep.decode(c), cond)  # the known values survive exactly
    f = 2**level
    assert m.sum((1, 2, 3)).tolist() == [2, 2]
    assert m[0, 0, 0, 0] == 1 and m[0, 0, 5 // f, 9 // f] == 1
    cf, mf = to_model_space(*first_frames(x, f), rep)  # whole first block is known
    assert (mf[:, :, 0] == 1).all() and (mf[:, :, 1:] == 0).all()


def test_save_pretrained_round_trip(enc, tiny_dir, tmp_path):
    enc.save_pretrained(tmp_path / "default")  # frozen packaged default: config only
    assert [p.name for p in (tmp_path / "default").iterdir()] == ["text_encoder_config.json"]
    ft = TextEncoder(TextEncoderConfig(model=tiny_dir, trainable=True, max_length=16))
    opt = torch.optim.SGD(ft.parameters(), lr=0.1)
    ft.encode(PROMPTS).pooled[:, 0].sum().backward()
    opt.step()  # fine-tuned weights now differ from tiny_dir's
    ft.eval()
    ft.save_pretrained(tmp_path / "ft")
    assert (tmp_path / "ft" / "model.safetensors").is_file()
    back = TextEncoder.from_pretrained(tmp_path / "ft", trainable=False)
    base = TextEncoder(TextEncoderConfig(model=tiny_dir, max_length=16))
    with torch.no_grad():
        want = ft.encode(PROMPTS).pooled
    assert torch.allclose(back.encode(PROMPTS).pooled, want, atol=1e-6)
    assert not torch.allclose(base.encode(PROMPTS).pooled, want, atol=1e-4)
    assert back.fingerprint() != base.fingerprint()
