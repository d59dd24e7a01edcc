"""One config object per run: a named preset (Table 3 of the paper, or a smaller demo), then CLI overrides.

`TrainConfig` nests a `ModelConfig`; the model config alone travels with exported sampling checkpoints.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any


D_ARCHS = ("vit", "conv")  # ModelConfig.d_arch


@dataclass
class ModelConfig:
    dataset: str = "mnist"           # "mnist" (1 channel) or "celeba" (3 channels); decides the data pipeline
    image_size: int = 64
    channels: int = 1
    patch_size: int = 8
    enc_depth: int = 6
    enc_heads: int = 8
    enc_dim: int = 256
    dec_depth: int = 6
    dec_heads: int = 8
    dec_dim: int = 512
    d_depth: int = 6
    d_heads: int = 8
    d_dim: int = 256
    mlp_ratio: float = 4.0
    z_dim: int = 128                 # global noise z ~ N(0, I)
    noise_width: int = 256           # width of the 8-layer noise MLP
    noise_layers: int = 8
    noise_dim: int = 32              # per-patch noise embedding size (L x noise_dim comes from one linear layer)
    # Kaiming-initialised mapping and unit-RMS noise embeddings. Off reproduces the first shipped checkpoints, whose
    # xavier-initialised 8-layer mapping shrank z's influence ~100x and collapsed joint samples to one image.
    noise_norm: bool = False
    head_channels: int = 32          # hidden channels of the 3-layer conv head
    d_overlap: int = 2               # discriminator patches overlap their neighbours by this many pixels per side
    # Minibatch standard deviation (StyleGAN) over groups of this many consecutive images, fed to D's CLS token
    # before its last block; 0 disables. Beyond the paper: without it joint samples collapsed to one image.
    d_mbstd_group: int = 0
    # Beyond the paper: a small conv net inside G that reads the completed image back into z[:latent_dims]
    # (BicycleGAN's cLR-GAN latent regression). Trained with G by `latent_regress` (TrainConfig), it makes a G that
    # ignores z pay for it: the conditional GAN's usual collapse. 0 = no regressor (paper).
    latent_dims: int = 0
    # Beyond the paper: the latent regressor also reads a log-variance, so that it doubles as BicycleGAN's encoder
    # q(z[:latent_dims] | x) for `encoded_reconstruction` (TrainConfig). Needs latent_dims. Off = no such head.
    latent_encoder: bool = False
    # Beyond the paper: the latent regressor reads the image average-pooled by this factor (1 = every pixel). A G
    # that must make z recoverable can hide it in single-pixel speckle, which a D kept smooth by R1 barely sees;
    # pooled by the patch size, the regressor sees each patch's mean colour only, so z has to move the image's layout.
    # Measured (docs/recipe-study.md, row `latent1-batch32-mismatch1-pool4`): no less speckle at 100 kimg.
    latent_pool: int = 1
    # Beyond the paper: the per-patch noise also scales and shifts each decoder block's LayerNorms (ViTGAN's
    # self-modulated LayerNorm), a second noise path beside the added projection. Off = paper.
    noise_modulation: bool = False
    # "vit": the paper's ViT discriminator (App. C). "conv": beyond the paper, a small conv net with S/T indicator
    # maps (nn/conv_discriminator.py) that sees the speckle and broken strokes the ViT D lets through at CPU scale.
    d_arch: str = "vit"
    # Beyond the paper: 2 adds a second D of the same arch on the image pooled 2x (pix2pixHD's multi-scale D;
    # nn/multiscale_discriminator.py), whose verdict cannot rest on speckle. 1 = one D (paper).
    d_scales: int = 1
    # Beyond the paper: D also carries a critic that embeds the S part and the T part of an image separately and
    # learns which T goes with which S (nn/consistency_critic.py), for TrainConfig.consistency. Off = paper.
    consistency_critic: bool = False

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid ** 2

    def validate(self) -> None:
        positive = ("image_size", "patch_size", "enc_heads", "enc_dim", "dec_depth", "dec_heads", "dec_dim",
                    "d_depth", "d_heads", "d_dim", "z_dim", "noise_width", "noise_dim", "head_channels")
        check_values(self, positive, lambda v: v > 0, "must be positive")
        check_values(self, ("enc_depth", "noise_layers", "d_overlap", "d_mbstd_group", "latent_dims"),
                     lambda v: v >= 0, "must not be negative")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        for name in ("enc", "dec", "d"):
            dim, heads = getattr(self, f"{name}_dim"), getattr(self, f"{name}_heads")
            if dim % heads:
                raise ValueError(f"{name}_dim {dim} is not divisible by {name}_heads {heads}")
        if self.latent_encoder and not self.latent_dims:
            raise ValueError("latent_encoder reads z[:latent_dims] from an image: set latent_dims > 0")
        if self.latent_dims > self.z_dim:
            raise ValueError(f"latent_dims {self.latent_dims} exceeds z_dim {self.z_dim}")
        if self.latent_pool < 1 or self.image_size % self.latent_pool:
            raise ValueError(f"latent_pool must be a positive divisor of image_size {self.image_size}, "
                             f"got {self.latent_pool}")
        if self.d_arch not in D_ARCHS:
            raise ValueError(f"d_arch must be one of {D_ARCHS}, got {self.d_arch!r}")
        if self.d_scales not in (1, 2):
            raise ValueError(f"d_scales must be 1 or 2, got {self.d_scales}")
        if self.d_scales == 2 and (self.patch_size % 2 or self.image_size % 2):
            raise ValueError(f"d_scales=2 pools the image 2x and halves the patches: image_size {self.image_size} "
                             f"and patch_size {self.patch_size} must be even")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    preset: str = "paper"
    batch: int = 256                 # global batch over all processes
    lr: float = 1e-4
    betas: tuple[float, float] = (0.1, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0       # linear lr warm-up, in epochs of the training set
    grad_clip: float = 0.0           # max grad norm; 0 disables clipping
    r1_gamma: float = 10.0           # lambda of Table 3; penalty = gamma / 2 * E ||grad_x f(x)||^2 on real data
    r1_every: int = 1                # lazy R1: every k steps, scaled by k (StyleGAN2); 1 = every step (paper)
    ema_kimg: float = 10.0           # half-life of the G EMA in thousands of images
    ema_rampup: float = 0.05         # EMA half-life <= rampup * images seen, so early samples are not stale
    source_beta: tuple[float, float] = (0.5, 3.0)   # |S1| / L
    target_beta: tuple[float, float] = (3.0, 0.5)   # |T1| / |L \ S1|
    comm_beta: tuple[float, float] = (0.5, 3.0)     # |S2| / |S1 u T1|
    raster_prob: float = 0.25        # share of samples whose S is an initial (raster-order) portion, not random
    # Draw one (S, T) pair set per minibatch-std group of d_mbstd_group consecutive images, so D's group
    # statistic compares images completed on the same patches (beyond the paper; off = one draw per image).
    group_masks: bool = False
    # One (S, T) draw for the whole batch (per process), as Alg. 2 samples one pair per iteration: D's group statistic
    # and every loss then compare completions of the same patches. The consistency critic always draws so.
    pair_per_batch: bool = False
    xflip: bool = False              # horizontal flips of real images (faces)
    diffaug: bool = False            # differentiable colour augmentation of D's inputs (beyond the paper)
    # Beyond the paper: weight of a mode-seeking term (Mao et al. 2019, MSGAN) in G's loss. Half of the batch is
    # completed twice with two noises; G is pushed to keep |x_a - x_b| / |z_a - z_b| away from 0, i.e. not to
    # ignore z. 0 = off (paper).
    mode_seeking: float = 0.0
    # Beyond the paper: weight of an L1 term pulling G's pixels on T towards the real image's, weighted by the
    # S-ratio |S| / L of each completion (pix2pix's L1 beside the GAN loss): the more of the image S shows, the more
    # T is determined by it, and a joint sample (S empty) is asked for nothing. 0 = off (paper).
    source_reconstruction: float = 0.0
    # Beyond the paper: K > 1 charges that L1 term only to the closest of K completions of one S with different
    # noises (best of many), on the first B / (2 (K - 1)) pair-1 images, completed K - 1 more times; 1 = every
    # completion charged (pix2pix), which leaves G no reason to vary T with z.
    reconstruction_samples: int = 1
    # Beyond the paper: weight of D's loss on mismatched reals (S from one real image, T from another; Reed et
    # al. 2016's matching-aware discriminator), which D must call fake under both pairs, so that it learns whether
    # T follows from S. Costs a third more of D's passes. 0 = off (paper).
    mismatch_reals: float = 0.0
    # Beyond the paper: the first N kimg train G alone on the L1 error of T (S-ratios uniform in [0, 1], each
    # completion weighted by its S-ratio as in source_reconstruction), with no D and no GAN terms, before the GAN
    # starts (Iizuka et al. 2017 train their completion network on a reconstruction loss first). A G step without D
    # costs a fraction of a GAN step, and such a G reads the digit from S better than any GAN row (recipe study).
    # 0 = off (paper).
    pretrain_l1_kimg: float = 0.0
    # Beyond the paper: weight of pix2pixHD's feature matching. G also pays the distance between D's layer features
    # of its pair-1 completion and of the real image its S came from, under the same (S, T), weighted by the S-ratio:
    # a reconstruction term in D's terms, which ask about the digit rather than each pixel. D's features, un-
    # augmented, of 2B more images per G step. 0 = off (paper).
    feature_matching: float = 0.0
    # Start G and G_ema from an exported sampling checkpoint (a name under checkpoints/ or an export folder) with a
    # fresh D and fresh optimizers: how a campaign goes on when its run folder, D included, is gone (D and optimizer
    # state are never shipped). Its G must match this run's model; D's settings may differ. Resuming ignores it.
    init_from: str = ""
    # The first N kimg after the L1 pretraining (if any) train D alone, G frozen, so that a fresh D beside a
    # trained G (init_from) knows what to say before G hears from it. 0 = off.
    d_warmup_kimg: float = 0.0
    # Beyond the paper: weight of the latent-regression loss, the mean |z_hat - z[:latent_dims]| on each completion,
    # scaled by the share of the image G generated (a large S leaves little room for z). Needs model.latent_dims.
    latent_regress: float = 0.0
    # Beyond the paper: weight of BicycleGAN's cVAE-GAN reconstruction. Half of the pair-1 completions take
    # z[:latent_dims] from q(z | x), the latent regressor reading the real image their S came from
    # (model.latent_encoder), instead of N(0, I), and pay the mean L1 error of all the pixels G generated, whatever
    # the S-ratio: a reconstruction G can meet without turning z down, since z now carries what S does not. The
    # latent-regression term is then charged only on the completions whose z was drawn. 0 = off (paper).
    encoded_reconstruction: float = 0.0
    # Weight of the KL divergence of q(z | x) from N(0, I) beside it (BicycleGAN: 0.01 against 10 on the L1 term),
    # which keeps the encoded codes where sampling draws them.
    encoded_kl: float = 0.01
    # Beyond the paper: weight of G's consistency term. D's critic (model.consistency_critic) learns on real images
    # to pick each image's T among the batch's from its S alone, never seeing both at once (so not by the seam);
    # G pays the same InfoNCE loss on its pair-1 completions, i.e. when its T does not belong with its S more than
    # with the other images' S. Both need a batch that shares one (S, T): with it on, each step draws one pair set
    # for the whole batch, as Alg. 2 does. Logged as CR (the critic's loss on reals) and CF (G's). 0 = off (paper).
    consistency: float = 0.0
    # Learning-rate multiplier of the noise mapping z -> n (StyleGAN trains its mapping at 0.01x); 1 = paper.
    mapping_lr_mult: float = 1.0
    # Learning-rate multiplier of D (two time-scale update rule, Heusel et al. 2017, who ran D faster than G);
    # 1 = paper.
    d_lr_mult: float = 1.0
    # R1 on the real images under both (S, T) pairs D judges them with; off = pair 1 only (one R1 pass).
    r1_both_pairs: bool = False
    kimg: float = 1000.0
    tick_kimg: float = 4.0           # status line + stats every tick
    snap_ticks: int = 5              # checkpoint + sample sheets every snap_ticks ticks
    keep_checkpoints: int = 2
    snapshot_samples: int = 256      # joint samples measured at every snapshot (metrics/snapshot.py); 0 = off
    precision: str = "fp32"          # "fp32" or "bf16"
    compile: bool = False
    # torch.compile mode: "default", or "reduce-overhead" (CUDA graphs: one launch per compiled pass, for short
    # sequences where kernel launches dominate), or "max-autotune-no-cudagraphs"
    compile_mode: str = "default"
    seed: int = 0
    device: str = "auto"
    data: str = ""
    out: str = "runs/run"
    resume: str = ""
    download: bool = False
    max_minutes: float = 0.0         # stop (with a checkpoint) after this wall time; 0 = no limit
    limit_images: int = 0            # use only the first N training images (tests, tiny runs); 0 = all

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def validate(self) -> None:
        """ValueError for values that would fail later, deep in a run (a zero period, a 1-tuple of betas ...)."""
        self.model.validate()
        check_values(self, ("batch", "snap_ticks", "r1_every", "keep_checkpoints", "reconstruction_samples"),
                     lambda v: v >= 1, "must be >= 1")
        check_values(self, ("lr", "eps", "kimg", "tick_kimg", "ema_kimg"), lambda v: v > 0, "must be positive")
        check_values(self, ("weight_decay", "warmup_epochs", "grad_clip", "r1_gamma", "ema_rampup", "mode_seeking",
                            "latent_regress", "source_reconstruction", "mismatch_reals",
                            "encoded_reconstruction", "encoded_kl", "pretrain_l1_kimg",
                            "d_warmup_kimg", "feature_matching", "consistency",
                            "snapshot_samples", "max_minutes", "limit_images"),
                     lambda v: v >= 0, "must not be negative")
        check_values(self, ("mapping_lr_mult", "d_lr_mult"), lambda v: v > 0, "must be positive")
        if (self.latent_regress > 0) != (self.model.latent_dims > 0):
            raise ValueError("latent_regress and latent_dims go together: set both (a weight and how many noise "
                             f"dimensions to recover) or neither; got latent_regress {self.latent_regress}, "
                             f"latent_dims {self.model.latent_dims}")
        if (self.encoded_reconstruction > 0) != self.model.latent_encoder:
            # An encoder head nothing trains would also break DDP (a parameter without a gradient).
            raise ValueError("encoded_reconstruction and latent_encoder go together: set both (a weight and the "
                             f"encoder head) or neither; got encoded_reconstruction {self.encoded_reconstruction}, "
                             f"latent_encoder {self.model.latent_encoder}")
        if (self.consistency > 0) != self.model.consistency_critic:
            # A critic nothing trains G with is wasted work (and a critic without one has nothing to say).
            raise ValueError("consistency and consistency_critic go together: set both (G's weight and D's critic) "
                             f"or neither; got consistency {self.consistency}, consistency_critic "
                             f"{self.model.consistency_critic}")
        if self.reconstruction_samples > 1 and (self.mode_seeking > 0 or self.source_reconstruction == 0):
            raise ValueError("reconstruction_samples > 1 needs source_reconstruction > 0 and mode_seeking 0 (each "
                             f"completes extra copies of the batch); got source_reconstruction "
                             f"{self.source_reconstruction}, mode_seeking {self.mode_seeking}")
        check_values(self, ("raster_prob",), lambda v: 0 <= v <= 1, "must lie in [0, 1]")
        check_values(self, ("betas",), lambda v: len(v) == 2 and all(0 <= b < 1 for b in v),
                     "must be two values in [0, 1)")
        check_values(self, ("source_beta", "target_beta", "comm_beta"), lambda v: len(v) == 2 and min(v) > 0,
                 "must be two positive Beta parameters")
        if not self.out:
            raise ValueError("out (the run folder) must not be empty")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        model = ModelConfig(**data.pop("model"))
        for key in ("betas", "source_beta", "target_beta", "comm_beta"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(model=model, **data)


def _paper_mnist() -> TrainConfig:
    # Overlapping D patches are among App. D's CelebA-only tricks: MNIST trained without any.
    return TrainConfig(model=ModelConfig(dataset="mnist", image_size=64, channels=1, patch_size=8, noise_norm=True,
                                         d_overlap=0), preset="paper", batch=256)


def _paper_celeba() -> TrainConfig:
    # The CelebA-only tricks of App. D: 10-epoch warm-up, clipping at 5, AdamW eps 1e-5, overlapping D patches.
    return TrainConfig(model=ModelConfig(dataset="celeba", image_size=120, channels=3, patch_size=10, noise_norm=True),
                       preset="paper", batch=128, eps=1e-5, warmup_epochs=10.0, grad_clip=5.0, xflip=True)


def _demo_mnist() -> TrainConfig:
    model = ModelConfig(dataset="mnist", image_size=32, channels=1, patch_size=4,
                        enc_depth=4, enc_heads=4, enc_dim=192, dec_depth=4, dec_heads=4, dec_dim=256,
                        d_depth=4, d_heads=4, d_dim=192, z_dim=64, noise_width=192, noise_dim=16,
                        head_channels=32, noise_norm=True, d_mbstd_group=4)
    return TrainConfig(model=model, preset="demo", batch=256, grad_clip=5.0, tick_kimg=8.0)


def _demo_celeba() -> TrainConfig:
    model = ModelConfig(dataset="celeba", image_size=64, channels=3, patch_size=8,
                        enc_depth=4, enc_heads=8, enc_dim=256, dec_depth=4, dec_heads=8, dec_dim=256,
                        d_depth=4, d_heads=8, d_dim=256, z_dim=128, noise_width=256, noise_dim=32,
                        head_channels=48, noise_norm=True, d_mbstd_group=4)
    return TrainConfig(model=model, preset="demo", batch=256, eps=1e-5, warmup_epochs=10.0, grad_clip=5.0,
                       xflip=True, diffaug=True, tick_kimg=8.0)


def _cpu_mnist() -> TrainConfig:
    """Small enough to train usefully on a 2-core CPU in about an hour."""
    model = ModelConfig(dataset="mnist", image_size=28, channels=1, patch_size=4,
                        enc_depth=2, enc_heads=4, enc_dim=96, dec_depth=3, dec_heads=4, dec_dim=96,
                        d_depth=2, d_heads=4, d_dim=96, z_dim=64, noise_width=96, noise_dim=16,
                        head_channels=16, noise_norm=True, d_mbstd_group=4)
    return TrainConfig(model=model, preset="cpu", batch=64, grad_clip=5.0, tick_kimg=2.0, snap_ticks=5)


def _cpu_celeba() -> TrainConfig:
    """The faces' counterpart of the `cpu` MNIST preset (same widths and depths): 64 px in 8 px patches (the token
    grid of `demo`), with `demo`'s CelebA tricks but a one-epoch warm-up (ten epochs are most of a CPU campaign)."""
    model = ModelConfig(dataset="celeba", image_size=64, channels=3, patch_size=8,
                        enc_depth=2, enc_heads=4, enc_dim=96, dec_depth=3, dec_heads=4, dec_dim=96,
                        d_depth=2, d_heads=4, d_dim=96, z_dim=64, noise_width=96, noise_dim=16,
                        head_channels=16, noise_norm=True, d_mbstd_group=4)
    return TrainConfig(model=model, preset="cpu", batch=64, eps=1e-5, warmup_epochs=1.0, grad_clip=5.0, xflip=True,
                       diffaug=True, tick_kimg=2.0, snap_ticks=5)


def _tiny(dataset: str) -> TrainConfig:
    """A model small enough to train for a few seconds in tests."""
    channels = 1 if dataset == "mnist" else 3
    model = ModelConfig(dataset=dataset, image_size=16, channels=channels, patch_size=4,
                        enc_depth=1, enc_heads=2, enc_dim=32, dec_depth=1, dec_heads=2, dec_dim=32,
                        d_depth=1, d_heads=2, d_dim=32, z_dim=16, noise_width=32, noise_layers=2,
                        noise_dim=8, head_channels=8, noise_norm=True)
    return TrainConfig(model=model, preset="tiny", batch=8, kimg=0.032, tick_kimg=0.016, snap_ticks=1)


PRESETS = {
    ("mnist", "paper"): _paper_mnist,
    ("celeba", "paper"): _paper_celeba,
    ("mnist", "demo"): _demo_mnist,
    ("celeba", "demo"): _demo_celeba,
    ("mnist", "cpu"): _cpu_mnist,
    ("celeba", "cpu"): _cpu_celeba,
    ("mnist", "tiny"): lambda: _tiny("mnist"),
    ("celeba", "tiny"): lambda: _tiny("celeba"),
}


def preset(dataset: str, name: str) -> TrainConfig:
    try:
        return PRESETS[(dataset, name)]()
    except KeyError:
        names = sorted(n for d, n in PRESETS if d == dataset)
        raise ValueError(f"unknown preset {name!r} for {dataset}; choose one of {names}") from None


def check_values(cfg: Any, names: tuple[str, ...], ok, what: str) -> None:
    """ValueError naming the first of `names` whose value fails `ok`."""
    for name in names:
        if not ok(getattr(cfg, name)):
            raise ValueError(f"{name} {what}, got {getattr(cfg, name)!r}")


def _parse_value(text: str, like: Any) -> Any:
    if isinstance(like, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(like, tuple):
        return tuple(float(v) for v in text.split(","))
    return type(like)(text)


def apply_overrides(cfg, overrides: list[str]):
    """Apply `key=value` overrides to a train config with a nested `model` config (the GAN's or the multi-modal
    model's); model fields may be named bare (`dec_dim=384`) or as `model.dec_dim=384`."""
    model_fields = {f.name for f in dataclasses.fields(cfg.model)}
    train_fields = {f.name for f in dataclasses.fields(cfg)} - {"model"}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.removeprefix("model.").replace("-", "_")
        target = cfg.model if key in model_fields else cfg if key in train_fields else None
        if target is None:
            raise ValueError(f"unknown config key {key!r}")
        try:
            setattr(target, key, _parse_value(text, getattr(target, key)))
        except ValueError as exc:
            raise ValueError(f"--set {key}={text}: {exc}") from None
    cfg.model.validate()
    return cfg


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help="paper (Table 3), demo (shipped checkpoints; the default), cpu (a small "
                        "model for CPUs) or tiny (tests); when resuming, the run's own settings")
    parser.add_argument("--data", help="dataset path (see README)")
    parser.add_argument("--out", help="run directory")
    parser.add_argument("--resume", help="'auto' (newest checkpoint in --out) or a checkpoint path")
    parser.add_argument("--kimg", type=float, help="training length in thousands of images seen")
    parser.add_argument("--batch", type=int, help="global batch size")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", choices=["fp32", "bf16"])
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-minutes", type=float, dest="max_minutes", help="stop with a checkpoint after this")
    parser.add_argument("--download", action="store_true", help="allow downloading the dataset (never by default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config value, e.g. --set dec_dim=384 --set lr=2e-4")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config as JSON and exit")


def check_batch(cfg: TrainConfig, world: int) -> int:
    """The batch per process; ValueError where the global batch does not split into processes and groups."""
    if cfg.batch % world:
        raise ValueError(f"--batch {cfg.batch} is not divisible by the {world} processes")
    local, group = cfg.batch // world, cfg.model.d_mbstd_group
    if group and local % group:
        raise ValueError(f"the batch per process ({local}) is not a multiple of d_mbstd_group ({group}): "
                         "D's minibatch-std groups would mix real and generated images")
    return local


DEFAULT_PRESET = "demo"


def default_out(dataset: str, preset_name: str) -> str:
    return f"runs/{dataset}-{preset_name}"


def check_resumed_preset(trained: str, asked: str | None) -> None:
    """A --preset given with --resume must be the run's own (the run's settings are the ones resumed)."""
    if asked and asked != trained:
        raise ValueError(f"the checkpoint being resumed was trained with --preset {trained}, not {asked}; "
                         "leave --preset out to continue it")


def config_from_args(dataset: str, args: argparse.Namespace, saved: dict[str, Any] | None = None) -> TrainConfig:
    """The preset, then the flags given. `saved` (the config stored in the checkpoint being resumed) replaces the
    preset, so that `--resume auto` alone continues a run with its own settings; flags given still apply."""
    if saved is None:
        cfg = preset(dataset, args.preset or DEFAULT_PRESET)
    else:
        cfg = TrainConfig.from_dict(saved)
        check_resumed_preset(cfg.preset, args.preset)
    for name in ("data", "out", "resume", "kimg", "batch", "device", "precision", "compile", "seed", "max_minutes"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    if args.download:
        cfg.download = True
    if args.out is None and saved is None:
        cfg.out = default_out(dataset, cfg.preset)
    apply_overrides(cfg, args.set)
    cfg.validate()
    check_batch(cfg, int(os.environ.get("WORLD_SIZE", 1)))  # torchrun's process count
    return cfg
