"""The sampling API of the multi-modal MNIST model: every capability of one set of weights.

    model = DigitsModel.from_pretrained("digits-multimodal")         # a name under checkpoints/, or a folder
    probs = model.classify(images)                                   # p(y | x)            [B, 10]
    images, labels = model.generate(16, seed=0)                      # p(x, y)             joint
    images, _ = model.generate(16, labels=3, temperature=0.8)        # p(x | y)
    out, y = model.complete(images, keep, labels=None, seed=0)       # p(x_T | x_S [, y])  keep: [7, 7] grid

Images are [B, 1, 28, 28], uint8 or float in [0, 1]; outputs are float in [0, 1]. A "keep" grid marks the image
tokens (4x4 px blocks) in S; their pixels are pasted back, so x_S is returned exactly as given.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from biglearn.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, CheckpointError, atomic_write, read_checkpoint_folder,
                                 untouched_rng)
from biglearn.inference import resolve_checkpoint, resolve_device
from biglearn.multimodal.config import IMAGE_SIZE, NUM_LABELS, DigitsModelConfig
from biglearn.multimodal.objective import LABEL, pairs_from_sources
from biglearn.multimodal.tokenizer import VQTokenizer, to_unit
from biglearn.multimodal.transformer import AnyOrderTransformer
from biglearn.patches import SourceMasks

KIND = "digits-multimodal"
FORMAT_VERSION = 1
TOKEN_PIXELS = IMAGE_SIZE // 7   # one token covers a 4x4 block
SAMPLING_ORDERS = ("random", "raster")
MAX_GUIDANCE = 8.0   # far past any useful weight; bounds what a caller (e.g. the app) can ask for


class DigitsModel(SourceMasks):
    def __init__(self, tokenizer: VQTokenizer, transformer: AnyOrderTransformer,
                 device: torch.device | str | None = "auto", meta: dict | None = None):
        self.device = resolve_device(device) if device is None or isinstance(device, str) else device
        self.tokenizer = tokenizer.to(self.device).eval()
        self.transformer = transformer.to(self.device).eval()
        self.cfg: DigitsModelConfig = transformer.cfg
        self.meta = meta or {}

    # ------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | None = "auto") -> "DigitsModel":
        folder = resolve_checkpoint(name_or_path)
        meta, weights_path = read_checkpoint_folder(folder, "checkpoint")
        if meta.get("kind") != KIND:
            raise CheckpointError(f"{folder} holds a {meta.get('kind', 'BigLearn-GAN')!r} model, not a {KIND!r} one")
        try:
            cfg = DigitsModelConfig(**meta["model"])
            with untouched_rng():
                tokenizer, transformer = VQTokenizer(cfg), AnyOrderTransformer(cfg)
            weights = load_file(weights_path)
            for prefix, module in (("tokenizer.", tokenizer), ("transformer.", transformer)):
                module.load_state_dict({k[len(prefix):]: v.float() for k, v in weights.items() if k.startswith(prefix)})
        except Exception as exc:
            raise CheckpointError(f"{folder}: weights do not match config.json ({exc})") from exc
        return cls(tokenizer, transformer, device, meta)

    def save(self, folder: str | Path, info: dict | None = None) -> None:
        """model.safetensors (tokenizer.* and transformer.* weights) + config.json, each written atomically."""
        folder = Path(folder)
        tensors = {f"{prefix}.{k}": v.detach().cpu().contiguous()
                   for prefix, module in (("tokenizer", self.tokenizer), ("transformer", self.transformer))
                   for k, v in module.state_dict().items()}
        atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
        meta = {"format_version": FORMAT_VERSION, "kind": KIND, "model": asdict(self.cfg), **(info or {})}
        atomic_write(folder / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))

    # ------------------------------------------------------------ tokens <-> pixels
    @property
    def grid(self) -> int:
        return self.cfg.grid

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, 28, 28] -> unified image tokens [B, 49] (codes, raster order)."""
        return self.tokenizer.encode(images.to(self.device)).flatten(1)

    def decode(self, image_tokens: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode(image_tokens.view(-1, self.grid, self.grid)).cpu()

    def _sequence(self, image_tokens: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """[B, 49] codes (+ labels [B]) -> [B, L'] unified tokens (label slot 0 when no label is known)."""
        label_ids = torch.zeros(len(image_tokens), 1, dtype=torch.long, device=self.device)
        if labels is not None:
            label_ids[:, 0] = self.cfg.codebook_size + labels.to(self.device)
        return torch.cat([label_ids, image_tokens.to(self.device)], dim=1)

    def _labels(self, labels, batch: int) -> torch.Tensor | None:
        if labels is None:
            return None
        labels = torch.as_tensor(labels, dtype=torch.long).flatten()
        if len(labels) == 1:
            labels = labels.expand(batch)
        if len(labels) != batch:
            raise ValueError(f"got {len(labels)} labels for {batch} images")
        if labels.min() < 0 or labels.max() >= NUM_LABELS:
            raise ValueError(f"labels must be digits 0-9, got {labels.tolist()}")
        return labels

    def _keep(self, keep, batch: int) -> torch.Tensor:
        """A grid [7, 7] / [B, 7, 7] or a flat mask [49] / [B, 49] of kept tokens -> [B, 49] bool."""
        keep = torch.as_tensor(keep, dtype=torch.bool).cpu()
        if keep.ndim >= 2 and keep.shape[-2:] == (self.grid, self.grid):
            keep = keep.flatten(-2)
        if keep.shape[-1] != self.num_patches or keep.ndim not in (1, 2) or (keep.ndim == 2 and
                                                                             len(keep) not in (1, batch)):
            raise ValueError(f"keep must be a [{self.grid}, {self.grid}] grid or [{self.num_patches}] mask (or a batch "
                             f"of {batch} of them), got {tuple(keep.shape)}")
        return keep.expand(batch, self.num_patches)

    @property
    def num_patches(self) -> int:
        """Image tokens (the 'patches' of the token grid; named as in biglearn.inference.Completer)."""
        return self.cfg.num_image_tokens

    # ------------------------------------------------------------ the universal model
    @torch.no_grad()
    def fill(self, tokens: torch.Tensor, is_source: torch.Tensor, *, temperature: float = 1.0,
             seed: int | None = None, order: str = "random", guidance: float = 0.0) -> torch.Tensor:
        """Sample every non-source token of tokens [B, L'] given the sources (is_source [B, L']), one at a time:
        x_t1 ~ p(. | X_S'), x_t2 ~ p(. | X_S', x_t1), ... in a random order or ("raster") y first, then row by row.
        One transformer pass over the prefix, then one slot per token against a key/value cache.

        guidance w > 0: each image token, once y is known (given or already drawn), is drawn from
        log p(x_t | X, y) + w (log p(x_t | X, y) - log p(x_t | X)) (classifier-free guidance, Ho & Salimans
        2022). The model already holds p(x_t | X) without y: the same order with y moved to the end, run beside
        it as a twin row. Returns a completed copy."""
        if order not in SAMPLING_ORDERS:
            raise ValueError(f"order must be one of {', '.join(SAMPLING_ORDERS)}, not {order!r}")
        if temperature < 0:
            raise ValueError("temperature must be >= 0 (0 = most likely token)")
        if not 0 <= guidance <= MAX_GUIDANCE:
            raise ValueError(f"guidance must lie in [0, {MAX_GUIDANCE:g}] (0 = none), got {guidance}")
        generator = torch.Generator(device="cpu")
        if seed is None:
            generator.seed()       # a fresh random stream; torch.seed() would also reseed the global RNG
        else:
            generator.manual_seed(seed)
        tokens, is_source = tokens.clone().to(self.device), is_source.clone().cpu()
        full = is_source.all(dim=1)
        if full.all():
            return tokens
        is_source[full, LABEL] = False      # a row with nothing to generate: sample y, then put it back
        saved = tokens[:, LABEL].clone()
        sequence, num_source = pairs_from_sources(is_source, generator, raster=order == "raster")
        sequence, num_source = sequence.to(self.device), num_source.to(self.device)
        batch, length = tokens.shape
        rows = torch.arange(batch, device=self.device)
        label_index = (sequence == LABEL).long().argmax(dim=1)        # where y stands in each row's order
        # The transformer's rows: the B rows, and with guidance their B twins after them (same tokens). Until a
        # row's y is known its twin holds the same prefix and gives the same logits, so the twins join only at the
        # first step that needs one, taking a copy of the rows' cache: a joint digit runs one row until y is drawn.
        work = (tokens, sequence, num_source)
        twins_from = length
        if guidance:
            twin_sequence, twin_num_source = without_label_until_last(sequence, num_source, label_index)
            twin_orders = (torch.cat([sequence, twin_sequence]), torch.cat([num_source, twin_num_source]))
            twins_from = int((label_index - num_source + 1).clamp(min=0).min())
            if twins_from == 0:
                work = (tokens.repeat(2, 1), *twin_orders)
        logits, cache = self.transformer.prefill(*work)
        for k in range(length - int(num_source.min())):
            slot = num_source + k
            active = slot < length
            slot = slot.clamp(max=length - 1)   # a finished row recomputes its last slot: same cache entry
            if 0 < k == twins_from:
                work = (work[0].repeat(2, 1), *twin_orders)
                cache = [layer_cache.repeat(1, 2, 1, 1, 1) for layer_cache in cache]
            twins = k >= twins_from
            if twins:
                # The twin lags one slot once its order has passed y's place (y is last in it); while the row
                # draws y the twin computes its next slot early, which the next step recomputes.
                work_slot = torch.cat([slot, slot - (label_index < slot).long()])
            else:
                work_slot = slot
            if k:
                logits = self.transformer.extend(*work, work_slot, cache)
            if twins:
                logits = guided(*logits.chunk(2), guidance, drawing_label=label_index == slot)
            draw = self._draw(logits, temperature, generator)
            position = sequence[rows, slot]
            for half in range(len(work[0]) // batch):   # the rows and their twins hold the same tokens
                work[0][half * batch + rows[active], position[active]] = draw[active]
        tokens = work[0][:batch]
        tokens[full.to(self.device), LABEL] = saved[full.to(self.device)]
        return tokens

    @staticmethod
    def _draw(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
        if temperature == 0:
            return logits.argmax(dim=1)
        probs = (logits.float().cpu() / temperature).softmax(dim=1)
        # One draw per row by an exponential race, argmax p / E with E ~ Exp(1): torch.multinomial's own method for
        # one sample (the same draws from the same generator) without its input checks, which cost as much again.
        return (probs / torch.empty_like(probs).exponential_(generator=generator)).argmax(dim=1).to(logits.device)

    @torch.no_grad()
    def label_probs(self, image_tokens: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """p(y | x_S) [B, 10] for image tokens [B, 49] with S = keep [B, 49] (all tokens when None)."""
        batch = len(image_tokens)
        keep = torch.ones(batch, self.cfg.num_image_tokens, dtype=torch.bool) if keep is None else keep.cpu()
        is_source = torch.cat([torch.zeros(batch, 1, dtype=torch.bool), keep], dim=1)
        # The order of the other targets is irrelevant (no slot at or before |S'| sees them): raster, no randomness.
        order, num_source = pairs_from_sources(is_source, label_first=True, raster=True)
        order, num_source = order.to(self.device), num_source.to(self.device)
        logits = self.transformer(self._sequence(image_tokens, None), order, num_source,
                                  slots=int(num_source.max()) + 1)
        logits = logits[torch.arange(batch, device=self.device), num_source, self.cfg.codebook_size:]
        return logits.softmax(dim=1).cpu()

    # ------------------------------------------------------------ capabilities
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """p(y | x): [B, 1, 28, 28] -> [B, 10]."""
        return self.label_probs(self.encode(images))

    def generate(self, count: int, *, labels=None, temperature: float = 1.0, seed: int | None = None,
                 order: str = "random", guidance: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """count samples of p(x, y) (labels None) or p(x | y) (an int, or one label per sample).
        -> (images [count, 1, 28, 28] in [0, 1], labels [count]: the sampled or the given ones)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        labels = self._labels(labels, count)
        image_tokens = torch.zeros(count, self.cfg.num_image_tokens, dtype=torch.long)
        is_source = torch.zeros(count, self.cfg.length, dtype=torch.bool)
        is_source[:, LABEL] = labels is not None
        tokens = self.fill(self._sequence(image_tokens, labels), is_source, temperature=temperature, seed=seed,
                           order=order, guidance=guidance)
        return self.decode(tokens[:, 1:]), (tokens[:, LABEL] - self.cfg.codebook_size).cpu()

    def complete(self, images: torch.Tensor, keep, *, labels=None, temperature: float = 1.0,
                 seed: int | None = None, order: str = "random", guidance: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(x_T | x_S) or, with labels, p(x_T | x_S, y). keep: [7, 7] or [B, 7, 7] bool (True = in S).
        -> (completed images [B, 1, 28, 28] in [0, 1] with S pixels exact, labels [B]: given or sampled)."""
        x = to_unit(images).cpu()
        batch = len(x)
        labels = self._labels(labels, batch)
        keep = self._keep(keep, batch)
        is_source = torch.cat([torch.full((batch, 1), labels is not None), keep], dim=1)
        tokens = self.fill(self._sequence(self.encode(x), labels), is_source, temperature=temperature, seed=seed,
                           order=order, guidance=guidance)
        out = self.decode(tokens[:, 1:])
        pixels = keep.reshape(batch, 1, self.grid, self.grid).repeat_interleave(TOKEN_PIXELS, 2)
        pixels = pixels.repeat_interleave(TOKEN_PIXELS, 3)
        return torch.where(pixels, x, out), (tokens[:, LABEL] - self.cfg.codebook_size).cpu()


def without_label_until_last(sequence: torch.Tensor, num_source: torch.Tensor,
                             label_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The twin of each prediction order with y moved to its end: no slot before the last sees y, so the twin's
    slots give p(x_t | X) for the same X as the original order's, without y. -> (order, |S'| of the twin)."""
    length = sequence.shape[1]
    key = torch.arange(length, device=sequence.device).expand_as(sequence) + length * (sequence == LABEL)
    return sequence.gather(1, key.argsort(dim=1)), num_source - (label_index < num_source).long()


def guided(conditional: torch.Tensor, unconditional: torch.Tensor, weight: float,
           drawing_label: torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance on logits [B, V]: cond + w (cond - uncond) where both are finite; the rows that
    are drawing y itself (drawing_label [B]) keep their own logits (the twin predicts another token there)."""
    both = torch.isfinite(conditional) & torch.isfinite(unconditional) & ~drawing_label[:, None]
    return torch.where(both, conditional + weight * (conditional - unconditional), conditional)
