"""Backbones (DiT, UNet, FNO): shapes, conditioning slots, gradients, save/load, errors."""

import json
import math

import pytest
import torch

from genphys.backbone import SpaceTimeDiT, SpaceTimeFNO, SpaceTimeUNet, patchify, unpatchify
from genphys.backbone.layers import noise_input, sincos_embedding, sinusoidal_features
from genphys.errors import UserInputError

KINDS = ["dit", "unet", "fno"]
DIMS = [1, 2]
SHAPES = {1: (2, 8, 16, 32), 2: (2, 8, 8, 16, 16)}
SLOTS = dict(param_dim=2, pooled_dim=6, token_dim=5, cond_channels=3)


def make(kind, dims, seed=0, **kw):
    torch.manual_seed(seed)
    if kind == "dit":
        patch = (2, 4) if dims == 1 else (2, 4, 4)
        return SpaceTimeDiT(in_channels=8, patch_size=patch, hidden_dim=32, depth=2, num_heads=2,
                            freq_dim=32, **kw)
    if kind == "fno":
        return SpaceTimeFNO(in_channels=8, num_frames=SHAPES[dims][2], spatial_dims=dims, width=16,
                            modes=4, depth=2, proj_width=16, groups=4, num_heads=2, freq_dim=32,
                            **kw)
    return SpaceTimeUNet(in_channels=8, spatial_dims=dims, base_channels=8, channel_mult=(1, 2),
                         groups=4, num_heads=2, freq_dim=32, **kw)


def perturb(model, seed=1, scale=0.05):
    """Add noise to every parameter so zero-initialised layers no longer hide the others."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def inputs(dims, dtype=torch.float32, seed=2):
    g = torch.Generator().manual_seed(seed)
    shape = SHAPES[dims]

    def r(*s):
        return torch.randn(*s, generator=g, dtype=dtype)

    b, grid = shape[0], shape[2:]
    return dict(
        x=r(*shape), sigma=torch.tensor([0.3, 4.0], dtype=dtype),
        params=r(b, 2), pooled=r(b, 6), tokens=r(b, 4, 5),
        token_mask=torch.tensor([[True, True, False, False], [True, True, True, True]]),
        cond=r(b, 3, *grid), cond_mask=(torch.rand(b, 1, *grid, generator=g) > 0.5).to(dtype))


def call(model, inp, drop=()):
    """Forward with the inputs of ``inp``, leaving out the slots named in ``drop``."""
    kw = {k: v for k, v in inp.items() if k not in ("x", "sigma") and k not in drop}
    return model(inp["x"], inp["sigma"], **kw)


GROUPS = {"params": ("params",), "pooled": ("pooled",), "tokens": ("tokens", "token_mask"),
          "cond": ("cond", "cond_mask")}
ALL = tuple(k for g in GROUPS.values() for k in g)


# ---------------------------------------------------------------- patchify


@pytest.mark.parametrize("shape,patch", [((2, 3, 16, 32), (1, 4)), ((2, 3, 16, 32), (2, 8)),
                                         ((2, 3, 8, 16, 12), (2, 2, 2)),
                                         ((1, 2, 4, 8, 8), (4, 4, 2))])
def test_patchify_round_trip_and_token_layout(shape, patch):
    x = torch.randn(shape, dtype=torch.float64)
    tok = patchify(x, patch)
    grid = tuple(s // p for s, p in zip(shape[2:], patch))
    assert tok.shape == (shape[0], math.prod(grid), shape[1] * math.prod(patch))
    assert torch.equal(unpatchify(tok, patch, grid), x)
    assert torch.equal(patchify(unpatchify(tok, patch, grid), patch), tok)
    # token n (row-major over the patch grid) holds patch n, channel-major then in-patch order
    n = math.prod(grid) - 2
    idx = torch.unravel_index(torch.tensor(n), grid)
    sl = tuple(slice(int(i) * p, (int(i) + 1) * p) for i, p in zip(idx, patch))
    assert torch.equal(tok[-1, n], x[(-1, slice(None), *sl)].reshape(-1))


def test_patchify_rejects_indivisible_grid():
    with pytest.raises(UserInputError, match=r"not divisible by the patch size \(2, 4\)"):
        patchify(torch.zeros(1, 1, 6, 10), (2, 4))
    with pytest.raises(UserInputError, match="cannot unpatchify"):
        unpatchify(torch.zeros(1, 5, 8), (2, 4), (2, 2))


def test_sincos_embedding_and_noise_features():
    emb = sincos_embedding((5,), 8)  # one axis: [sin(p w_k), cos(p w_k)], w_k = 10000^(-k/4)
    p = torch.arange(5, dtype=torch.float64)[:, None]
    w = 10000.0 ** (-torch.arange(4, dtype=torch.float64) / 4)
    assert torch.allclose(emb, torch.cat([torch.sin(p * w), torch.cos(p * w)], 1), atol=1e-15)
    emb2 = sincos_embedding((3, 4), 10)  # two axes, 2 channels of padding
    assert emb2.shape == (12, 10) and torch.all(emb2[:, 8:] == 0)
    grid = emb2[:, :8].reshape(3, 4, 8)  # (T, X, D)
    assert torch.equal(grid[:, 0, :4], grid[:, 3, :4])  # first half depends on axis 0 only
    assert torch.equal(grid[0, :, 4:], grid[2, :, 4:])  # second half on axis 1 only
    s = torch.tensor([math.exp(4.0), 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(noise_input(s, "log_sigma")[:2], torch.tensor([1.0, 0.0], dtype=s.dtype))
    assert torch.isfinite(noise_input(s, "log_sigma")).all()
    assert torch.equal(noise_input(s, "t"), s)
    f = sinusoidal_features(torch.tensor([0.5], dtype=torch.float64), 6, scale=2.0)
    w3 = 10000.0 ** (-torch.arange(3, dtype=torch.float64) / 3)
    assert torch.allclose(f[0], torch.cat([torch.cos(1.0 * w3), torch.sin(1.0 * w3)]))


# ---------------------------------------------------------------- shapes and slots


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", DIMS)
def test_zero_init_gives_zero_output_and_plain_model_works(kind, dims):
    model = make(kind, dims)
    inp = inputs(dims)
    out = model(inp["x"], inp["sigma"])
    assert out.shape == SHAPES[dims] and torch.all(out == 0)  # adaLN-zero / zero output conv
    out = perturb(model)(inp["x"], inp["sigma"])
    assert out.shape == SHAPES[dims] and torch.isfinite(out).all() and out.abs().max() > 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("slot", ["none"] + list(GROUPS) + ["all"])
def test_each_slot_shapes_and_effect(kind, dims, slot):
    model = perturb(make(kind, dims, **SLOTS))
    inp = inputs(dims)
    given = ALL if slot == "all" else GROUPS.get(slot, ())
    out = call(model, inp, drop=[k for k in ALL if k not in given])
    assert out.shape == SHAPES[dims] and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    if slot != "none":  # the slot changes the prediction
        assert (out - call(model, inp, drop=ALL)).abs().max() > 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_padded_tokens_do_not_change_the_output(kind):
    model = perturb(make(kind, 1, token_dim=5)).double()
    inp = inputs(1, torch.float64)
    tokens = inp["tokens"][:, :2]  # (B, 2, 5): both samples use 2 real tokens
    ref = model(inp["x"], inp["sigma"], tokens=tokens)
    junk = 100 * torch.randn(2, 3, 5, dtype=torch.float64)
    padded = torch.cat([tokens, junk], dim=1)  # (B, 5, 5)
    mask = torch.tensor([[True, True, False, False, False]] * 2)
    out = model(inp["x"], inp["sigma"], tokens=padded, token_mask=mask)
    assert (out - ref).abs().max() < 1e-12
    unmasked = model(inp["x"], inp["sigma"], tokens=padded)
    assert (unmasked - ref).abs().max() > 1e-6
    # every token masked out = no tokens (the null token only): what CFG drops to
    none = model(inp["x"], inp["sigma"])
    empty = model(inp["x"], inp["sigma"], tokens=padded, token_mask=torch.zeros(2, 5, dtype=bool))
    assert (empty - none).abs().max() < 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_nan_rows_drop_to_null_embedding_and_batch_independence(kind):
    model = perturb(make(kind, 1, **SLOTS)).double()
    inp = inputs(1, torch.float64)
    params = inp["params"].clone()
    params[0] = float("nan")  # sample 0 dropped (classifier-free guidance)
    out = model(inp["x"], inp["sigma"], params=params)
    none = model(inp["x"], inp["sigma"])
    assert (out[0] - none[0]).abs().max() < 1e-12
    assert (out[1] - none[1]).abs().max() > 1e-6
    one = model(inp["x"][1:], inp["sigma"][1:], params=params[1:])  # a sample ignores its batch
    assert (out[1:] - one).abs().max() < 1e-12
    pooled = inp["pooled"].clone()
    pooled[1] = float("nan")
    out = model(inp["x"], inp["sigma"], pooled=pooled)
    assert (out[1] - none[1]).abs().max() < 1e-12 and (out[0] - none[0]).abs().max() > 1e-6


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", DIMS)
def test_cond_values_only_matter_where_the_mask_is_one(kind, dims):
    model = perturb(make(kind, dims, cond_channels=3))
    inp = inputs(dims)
    ref = model(inp["x"], inp["sigma"], cond=inp["cond"], cond_mask=inp["cond_mask"])
    hidden = inp["cond"] + 5 * (1 - inp["cond_mask"])  # change only unobserved values
    out = model(inp["x"], inp["sigma"], cond=hidden, cond_mask=inp["cond_mask"])
    assert torch.equal(out, ref)
    seen = inp["cond"] + 5 * inp["cond_mask"]
    out = model(inp["x"], inp["sigma"], cond=seen, cond_mask=inp["cond_mask"])
    assert (out - ref).abs().max() > 1e-4
    per_channel = inp["cond_mask"].expand(-1, 3, *[-1] * (dims + 1))  # (B, C_c, T, ...)
    out = model(inp["x"], inp["sigma"], cond=inp["cond"], cond_mask=per_channel)
    assert torch.equal(out, ref)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", DIMS)
def test_every_parameter_gets_a_gradient(kind, dims):
    """Zero-init: at step 1 only the output layer has gradients; after 3 Adam steps all do."""
    extra = dict(pos_embedding="learned", sample_size=SHAPES[dims][2:]) if kind == "dit" else {}
    model = make(kind, dims, **SLOTS, **extra)
    inp = inputs(dims)
    inp["params"][0] = float("nan")  # one dropped row, so null and MLP paths both train
    inp["pooled"][1] = float("nan")
    target = torch.randn(SHAPES[dims], generator=torch.Generator().manual_seed(5))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(4):
        opt.zero_grad()
        loss = (call(model, inp) - target).pow(2).mean()
        loss.backward()
        zero = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        if step == 0:
            assert zero, "zero-initialised output should hide most parameters at step 1"
        if step < 3:
            opt.step()
    assert not zero, f"parameters without gradient after 3 steps: {zero}"


# ---------------------------------------------------------------- save / load, dtype, determinism


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", DIMS)
def test_save_pretrained_round_trip(kind, dims, tmp_path):
    model = perturb(make(kind, dims, **SLOTS))
    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "config.json" in files and any(f.endswith(".safetensors") for f in files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["param_dim"] == 2 and config["_class_name"] == type(model).__name__
    loaded = type(model).from_pretrained(tmp_path)
    inp = inputs(dims)
    with torch.no_grad():
        assert torch.equal(call(model, inp), call(loaded, inp))
    for name in ("patch_size", "channel_mult"):  # JSON lists normalised back to tuples
        if name in config:
            assert isinstance(config[name], list)
    assert getattr(loaded, "patch", None) == getattr(model, "patch", None)


def test_learned_positions_round_trip_and_grid_check(tmp_path):
    model = perturb(make("dit", 2, pos_embedding="learned", sample_size=(8, 16, 16)))
    model.save_pretrained(tmp_path)
    loaded = SpaceTimeDiT.from_pretrained(tmp_path)
    assert loaded.sample_grid == (8, 16, 16)
    inp = inputs(2)
    assert torch.equal(model(inp["x"], inp["sigma"]), loaded(inp["x"], inp["sigma"]))
    with pytest.raises(UserInputError, match="learned positions"):
        loaded(torch.zeros(1, 8, 8, 16, 32), torch.ones(1))


@pytest.mark.parametrize("kind", KINDS)
def test_load_as_float64_with_native_time_embedding(kind, tmp_path):
    model = perturb(make(kind, 1, noise_embedding="t"))
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path, torch_dtype=torch.float64)
    assert loaded.dtype == torch.float64 and loaded.config.noise_embedding == "t"
    inp = inputs(1, torch.float64)
    assert torch.equal(loaded(inp["x"], inp["sigma"]), model.double()(inp["x"], inp["sigma"]))


@pytest.mark.parametrize("kind", KINDS)
def test_determinism(kind):
    a, b = perturb(make(kind, 2, **SLOTS)), perturb(make(kind, 2, **SLOTS))
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    inp = inputs(2)
    out = call(a, inp)
    assert torch.equal(out, call(b, inp)) and torch.equal(out, call(a, inp))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", DIMS)
def test_float32_and_float64_agree(kind, dims):
    model = perturb(make(kind, dims, **SLOTS))
    inp32 = inputs(dims)
    out32 = call(model, inp32)
    inp64 = {k: v.double() if v.is_floating_point() else v for k, v in inp32.items()}
    out64 = call(model.double(), inp64)
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    rel = (out64 - out32.double()).norm() / out64.norm()
    assert rel < 1e-5


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs_raise_one_clear_error(kind):
    model = make(kind, 1, **SLOTS)
    x, s = torch.zeros(2, 8, 16, 32), torch.ones(2)
    cases = [
        ((torch.zeros(2, 7, 16, 32), s), {}, "7 channels"),
        ((torch.zeros(2, 8, 16, 32, 4), s), {}, r"\(B, C, T, X\)"),
        ((torch.zeros(2, 8, 15, 32), s), {}, "num_frames" if kind == "fno" else "not divisible"),
        ((x, torch.ones(3)), {}, "sigma has shape"),
        ((x, s), {"tokens": torch.zeros(2, 3, 4)}, r"expected \(2, L, 5\)"),
        ((x, s), {"params": torch.zeros(2, 3)}, r"expected \(2, 2\)"),
        ((x, s), {"cond": torch.zeros(2, 3, 16, 32), "cond_mask": torch.zeros(2, 2, 16, 32)},
         "cond_mask has shape"),
    ]
    for args, kw, msg in cases:
        with pytest.raises(UserInputError, match=msg):
            model(*args, **kw)
    plain = make(kind, 1)
    with pytest.raises(UserInputError, match="token_dim=0"):
        plain(x, s, tokens=torch.zeros(2, 3, 5))


def test_bad_configs_raise():
    with pytest.raises(UserInputError, match="not divisible by num_heads"):
        SpaceTimeDiT(hidden_dim=30, num_heads=4)
    with pytest.raises(UserInputError, match="noise_embedding"):
        SpaceTimeDiT(noise_embedding="sigma")
    with pytest.raises(UserInputError, match="needs sample_size"):
        SpaceTimeDiT(pos_embedding="learned")
    with pytest.raises(UserInputError, match="patch_size"):
        SpaceTimeDiT(patch_size=(2, 0))
    with pytest.raises(UserInputError, match="groups"):
        SpaceTimeUNet(base_channels=12, groups=8)
    with pytest.raises(UserInputError, match="groups"):
        SpaceTimeFNO(width=12, groups=8)
    with pytest.raises(UserInputError, match="modes=20 is too many"):
        SpaceTimeFNO(in_channels=8, num_frames=16, width=16, modes=20)(
            torch.zeros(1, 8, 16, 32), torch.ones(1))


@pytest.mark.parametrize("kind,lr,steps", [("dit", 1e-2, 80), ("unet", 3e-3, 40),
                                           ("fno", 3e-3, 40)])
def test_a_few_steps_fit_a_parameter_conditioned_target(kind, lr, steps):
    """The params slot carries information: fit out = params[0] * pattern; loss ÷ 5 quickly."""
    model = make(kind, 1, param_dim=2)
    t, xs = torch.arange(16)[:, None] / 16, torch.arange(32)[None] / 32  # (T, 1), (1, X)
    wave = torch.sin(2 * torch.pi * (xs + t))  # (T, X) travelling wave
    pattern = wave[None, None] * torch.linspace(-1, 1, 8)[None, :, None, None]  # (1, C, T, X)
    params = torch.randn(4, 2, generator=torch.Generator().manual_seed(3))
    x, sigma = torch.zeros(4, 8, 16, 32), torch.ones(4)
    if kind == "fno":  # translation-equivariant: a constant input can only give constant output
        x = pattern.expand(4, -1, -1, -1).contiguous()
    target = params[:, :1, None, None] * pattern  # (B, C, T, X)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x, sigma, params=params) - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
    print(f"{kind}: loss {losses[0]:.4f} -> {losses[-1]:.5f} in {steps} steps")


@pytest.mark.parametrize("patch,shape", [((1, 4), SHAPES[1]), ((2, 8), SHAPES[1]),
                                         ((2, 2, 2), SHAPES[2]), ((1, 4, 4), SHAPES[2])])
def test_dit_patch_sizes_and_cross_attention_placement(patch, shape):
    torch.manual_seed(0)
    model = perturb(SpaceTimeDiT(in_channels=8, patch_size=patch, hidden_dim=16, depth=3,
                                 num_heads=2, freq_dim=16, token_dim=5, cross_attn_every=2))
    assert [b.cross is not None for b in model.blocks] == [True, False, True]
    x = torch.randn(shape)
    out = model(x, torch.ones(2), tokens=torch.randn(2, 3, 5))
    assert out.shape == shape and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dims", DIMS)
def test_wavelet_channel_grid_through_the_backbone(kind, dims):
    """Field → level-1 wavelet channels (genphys.wavelets) → backbone → field, shapes kept."""
    from genphys.wavelets import WaveletChannels

    axes = (-2, -1) if dims == 1 else (-3, -2, -1)
    field = torch.randn(2, 1, *[2 * s for s in SHAPES[dims][2:]])  # (B, 1, T, *space)
    wc = WaveletChannels("db2", level=1, axes=axes)
    coeffs = wc(field)  # (B, 2**(dims + 1), T/2, *space/2)
    in_ch = 2 ** (dims + 1)
    assert coeffs.shape == (2, in_ch, *SHAPES[dims][2:])
    torch.manual_seed(0)
    if kind == "dit":
        model = SpaceTimeDiT(in_channels=in_ch, patch_size=(2, 4) if dims == 1 else (2, 4, 4),
                             hidden_dim=16, depth=1, num_heads=2, freq_dim=16)
    elif kind == "fno":
        model = SpaceTimeFNO(in_channels=in_ch, num_frames=SHAPES[dims][2], spatial_dims=dims,
                             width=16, modes=4, depth=1, proj_width=16, groups=4, num_heads=2,
                             freq_dim=16)
    else:
        model = SpaceTimeUNet(in_channels=in_ch, spatial_dims=dims, base_channels=8,
                              channel_mult=(1, 2), groups=4, num_heads=2, freq_dim=16)
    out = wc.inverse(perturb(model)(coeffs, torch.full((2,), 0.5)))
    assert out.shape == field.shape and torch.isfinite(out).all()


# ---------------------------------------------------------------- FNO specifics


@pytest.mark.parametrize("dims", DIMS)
def test_spectral_conv_equals_a_direct_dft(dims):
    """K v computed with explicit DFT sums over the kept modes (numpy, float64) matches."""
    import numpy as np

    from genphys.backbone import SpectralConv

    torch.manual_seed(0)
    m, grid = 3, (8,) if dims == 1 else (8, 10)
    conv = SpectralConv(2, 3, m, dims).double()
    v = torch.randn(2, 2, *grid, dtype=torch.float64)
    w = (conv.weight_re + 1j * conv.weight_im).detach().numpy()
    vh = np.fft.fftn(v.numpy(), axes=tuple(range(2, 2 + dims)))
    out_hat = np.zeros((2, 3, *grid), dtype=complex)
    if dims == 1:
        out_hat[..., :m] = np.einsum("bik,iok->bok", vh[..., :m], w)
        out_hat[..., -m + 1:] = np.conj(out_hat[..., 1:m][..., ::-1])  # Hermitian partner
    else:
        rows = list(range(m)) + list(range(grid[0] - m, grid[0]))
        out_hat[:, :, rows, :m] = np.einsum("bikl,iokl->bokl", vh[:, :, rows, :m], w)
        for r in range(grid[0]):  # Hermitian partners of the kept columns 1..m-1
            out_hat[:, :, (-r) % grid[0], grid[1] - m + 1:] = np.conj(
                out_hat[:, :, r, 1:m][..., ::-1])
    # columns 0 (and the Nyquist row/column) are taken real by irfftn, as here
    want = np.fft.ifftn(out_hat, axes=tuple(range(2, 2 + dims))).real
    got = conv(v).detach().numpy()
    assert np.abs(got - want).max() < 1e-12 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("dims", DIMS)
def test_fno_is_equivariant_to_periodic_shifts_in_space(dims):
    model = perturb(make("fno", dims, **SLOTS))
    inp = inputs(dims)
    inp["cond_mask"] = torch.ones_like(inp["cond_mask"])  # a mask that is itself shift-free
    out = call(model, inp)
    axes = tuple(range(3, 3 + dims))
    shift = (5,) * dims
    moved = {k: torch.roll(v, shift, axes) if k in ("x", "cond", "cond_mask") else v
             for k, v in inp.items()}
    assert torch.allclose(call(model, moved), torch.roll(out, shift, axes), atol=1e-5)
