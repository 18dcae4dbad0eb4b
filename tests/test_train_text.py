"""Caption conditioning in the trainer: cache, slot sizes, gradients, export -> pipeline."""

from __future__ import annotations

import json

import pytest
import torch

from genphys.cli import main
from genphys.conditioning import TextEncoder, TextEncoderConfig
from genphys.errors import UserInputError
from genphys.train import Trainer
from genphys.train.tasks import DiffusionTask
from genphys.train.testing import tiny_config
from genphys.train.text import file_captions


@pytest.fixture(scope="module")
def burgers(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "b.h5"
    assert main(["data", "burgers1d", "--num", "8", "--set", "nx=16", "--set", "nt=8",
                 "--out", str(path), "--no-progress"]) == 0
    return path


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A tiny random BERT with the MiniLM tokenizer, saved as a local transformers folder."""
    from transformers import BertConfig, BertModel

    tok = TextEncoder(TextEncoderConfig(max_length=16)).tokenizer
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    d = tmp_path_factory.mktemp("tiny_bert")
    BertModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def text_config(data, out, bert, mode="both", steps=2):
    return tiny_config(data, out, steps=steps, overrides=[
        f"data.text={mode}", f"data.text_encoder={{model: {bert}, max_length: 64}}",
        "data.split_fractions=[0.5,0.5,0.0]",
        "objective.cond_dropout={tokens: 0.5, pooled: 0.5}"])


def test_cache_holds_every_caption_and_matches_the_encoder(burgers, tiny_bert, tmp_path):
    task = DiffusionTask(text_config(burgers, tmp_path / "run", tiny_bert))
    caps = file_captions(burgers)
    assert len(caps) >= 3 * 8 and len(task.text.cache) == len(caps)
    assert task.text.cache.path.is_file() and task.text.cache.path.parent.name == "b.h5.captions"
    emb = task.text.encoder.encode(caps[:3], fixed_length=True)
    got = task.text(caps[:3])
    assert torch.allclose(got["tokens"], emb.tokens, atol=1e-6)
    assert torch.equal(got["token_mask"], emb.mask)
    assert torch.allclose(got["pooled"], emb.pooled, atol=1e-6)
    assert task.fixed_model_kwargs()["token_dim"] == 16
    assert task.fixed_model_kwargs()["pooled_dim"] == 16


@pytest.mark.parametrize("mode, slots", [("pooled", {"pooled_dim"}),
                                         ("tokens", {"token_dim"})])
def test_text_mode_selects_the_slots(burgers, tiny_bert, tmp_path, mode, slots):
    task = DiffusionTask(text_config(burgers, tmp_path / "run", tiny_bert, mode))
    kw = task.fixed_model_kwargs()
    assert slots <= set(kw) and not ({"pooled_dim", "token_dim"} - slots) & set(kw)


def test_text_paths_get_gradients(burgers, tiny_bert, tmp_path):
    task = DiffusionTask(text_config(burgers, tmp_path / "run", tiny_bert))
    model = task.build_model()
    with torch.no_grad():  # leave the zero-initialised output layers: gradients reach inside
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    batch = torch.utils.data.default_collate([task.train_ds[i] for i in range(2)])
    loss, _ = task.loss(model, batch, torch.Generator().manual_seed(3))
    loss.backward()
    for name in ("cond.pooled", "tokens."):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(name)]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_export_carries_the_encoder_and_the_pipeline_uses_it(burgers, tiny_bert, tmp_path):
    from genphys.pipelines import TextToSimulationPipeline

    result = Trainer(text_config(burgers, tmp_path / "run", tiny_bert)).fit()
    export = tmp_path / "run" / "export"
    assert json.loads((export / "text_encoder.json").read_text())["model"] == tiny_bert
    pipe = TextToSimulationPipeline.from_pretrained(export)
    assert pipe.text_encoder is not None and pipe.text_encoder.dim == 16
    prompt = "Burgers flow, viscosity 0.01, one bump"
    a = pipe(prompt, num_inference_steps=2, generator=[5], guidance_scale=1.0)
    b = pipe(prompt, num_inference_steps=2, generator=[5])
    a2 = pipe(prompt, num_inference_steps=2, generator=[5], guidance_scale={"text": 1.0})
    torch.testing.assert_close(a2.trajectories, b.trajectories, rtol=1e-4, atol=1e-5)  # fp32 sums
    c = pipe("Burgers flow, viscosity 0.01, three bumps", num_inference_steps=2, generator=[5])
    assert torch.equal(a.trajectories, b.trajectories)  # CFG scale 1 = the conditional model
    assert (b.trajectories - c.trajectories).abs().max() > 1e-9  # the prompt reaches the model
    assert result["step"] == 2


def test_text_encoder_without_text_is_an_error(burgers, tiny_bert, tmp_path):
    with pytest.raises(UserInputError, match="data.text_encoder is set but data.text='none'"):
        tiny_config(burgers, tmp_path, overrides=[f"data.text_encoder={{model: {tiny_bert}}}"])
