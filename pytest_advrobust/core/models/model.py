"""The model as the attack sees it: a function from [0,1] pixels (N×C×H×W) to logits (N×K).

Normalization lives here, applied *after* the perturbation, so ε is always in pixel units. The wrapper
puts every submodule in eval mode for the attack and restores each one's previous mode afterwards; it
never touches parameters, their ``requires_grad`` flags or their ``.grad``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from ..errors import ModelOutputError, OptionError
from ..settings.model import auto_device


def model_device(model: object) -> torch.device:
    """The device of the model's first parameter or buffer; CPU for a parameterless callable."""
    if isinstance(model, nn.Module):
        for parameter in model.parameters():
            return parameter.device
        for buffer in model.buffers():
            return buffer.device
    return torch.device("cpu")


def model_dtype(model: object) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer; float32 otherwise."""
    if isinstance(model, nn.Module):
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return torch.float32


def resolve_device(name: str, model: object) -> torch.device:
    """Turn a ``device`` setting into a torch.device, checking that it exists on this machine."""
    if name == "model":
        return model_device(model)
    if name == "auto":
        return torch.device(auto_device(torch.cuda.is_available()))
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(
                f"device={name!r}: CUDA is not available on this machine "
                "(torch.cuda.is_available() is False); use --adv-device=cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionError(f"device={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise OptionError(f"device={name!r}: MPS is not available on this machine; use cpu or auto")
    return device


def _refuse_meta(model: object) -> None:
    if not isinstance(model, nn.Module):
        return
    meta = [name for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()) if tensor.is_meta]
    if meta:
        shown = ", ".join(meta[:3]) + (", …" if len(meta) > 3 else "")
        raise ModelOutputError(
            f"the model's parameters are on the meta device (not materialized: {shown}), so it computes nothing; "
            "load its weights first (for example model.to_empty(device='cpu') and then load_state_dict, or "
            "from_pretrained without a meta device map)"
        )


def place_model(model: object, device: str) -> object:
    """The one device policy: ``device="model"`` leaves the model where it is; any other setting is
    checked (:func:`resolve_device`) and the model is moved there once (``model.to``). A model whose
    tensors were never materialized (the ``meta`` device) is refused: nothing can be computed with it."""
    _refuse_meta(model)
    if device == "model":
        return model
    wanted = resolve_device(device, model)
    if model_device(model) != wanted and isinstance(model, nn.Module):
        model = model.to(wanted)
    return model


@contextlib.contextmanager
def eval_mode(model: object) -> Iterator[None]:
    """Put every submodule in eval mode; restore each submodule's own previous mode on exit."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _channel_tensor(values: Sequence[float] | None, channels: int, name: str) -> torch.Tensor | None:
    if values is None:
        return None
    if len(values) == 1:
        values = list(values) * channels
    if len(values) != channels:
        raise OptionError(f"{name} has {len(values)} values but the images have {channels} channels")
    return torch.tensor(list(values), dtype=torch.float32).view(1, channels, 1, 1)


class WrappedModel:
    """``model`` (an ``nn.Module`` or callable returning logits) behind pixel-space normalization.

    Args:
        model: maps a normalized N×C×H×W float batch to N×K logits (not probabilities).
        mean: per-channel mean subtracted inside :meth:`logits`, after the perturbation.
        std: per-channel std divided there; both or neither of mean and std.
        input_size: expected (H, W) of the pixel images, checked before every attack.
        output: where the logits are in the model's output: a key or an index; None takes a tensor, or
            an output's ``.logits`` attribute or ``["logits"]`` item (Hugging Face image classifiers).

    Inputs are cast to the model's floating dtype (float16, bfloat16, float64) and logits back to
    float32, so the attack's own state stays float32 whatever the model computes in.
    """

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_size: tuple[int, int] | None = None,
        output: str | int | None = None,
    ) -> None:
        if (mean is None) != (std is None):
            raise OptionError("mean and std go together: give both or neither")
        self.model = model
        self.output = output
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self.input_size = input_size
        self.device = model_device(model)
        self.dtype = model_dtype(model)
        self.forward_passes = 0
        self.backward_passes = 0
        self.forward_rows = 0  # images through the model over every forward pass: what batch_size=auto times
        self._normalizers: dict[tuple[torch.device, torch.dtype, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._along: torch.Tensor | None = None
        self._along_logits: torch.Tensor | None = None

    def predict_along(self, pixels: torch.Tensor) -> None:
        """Predict ``pixels`` as extra rows of the next forward pass that needs no gradient (a check's
        second look at a few clean images costs no call of its own); :meth:`along_logits` returns them."""
        self._along, self._along_logits = pixels.detach(), None

    def along_logits(self) -> torch.Tensor:
        """The logits of the images given to :meth:`predict_along`, predicted now if no forward pass
        without gradient has carried them yet."""
        if self._along is not None:
            with torch.no_grad():
                self.logits(self._along.new_empty((0, *self._along.shape[1:])))
        assert self._along_logits is not None, "predict_along() was not called"
        logits, self._along_logits = self._along_logits, None
        return logits

    def place(self, device: str) -> None:
        """Move the wrapped model to a device setting (see :func:`place_model`)."""
        self.model = place_model(self.model, device)  # type: ignore[assignment]
        self.device = model_device(self.model)
        self.dtype = model_dtype(self.model)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of [0,1] pixels; counts the forward pass."""
        along = self._along
        if along is not None and not torch.is_grad_enabled() and along.shape[1:] == pixels.shape[1:]:
            self._along = None  # its rows ride along this pass, which needs no gradient
        else:
            along = None
        x = self._model_input(pixels, along)
        try:
            raw = self.model(x)
        except torch.cuda.OutOfMemoryError:
            raise  # not a shape the model refuses: the batch is halved and retried (core/data/batching.py)
        except (RuntimeError, ValueError) as exc:  # torch raises RuntimeError, transformers ValueError
            if self.forward_passes == 0 and re.search(r"channel|shape|size", str(exc)):  # a shape it cannot take
                shape = "×".join(map(str, pixels.shape))
                raise ModelOutputError(
                    f"the model refused a batch of {shape} images ({exc}); check the channels (a 1-channel "
                    "grayscale model needs --adv-image-mode=L for image files, or transforms.Grayscale() in a "
                    "Dataset's transform), input_size and the model's expected input"
                ) from exc
            raise
        self.forward_passes += 1
        self.forward_rows += x.shape[0]
        out = self._select(raw)
        if out.dtype != torch.float32:
            out = out.float()
        if out.dim() != 2 or out.shape[0] != x.shape[0]:
            raise ModelOutputError(
                f"the model returned shape {tuple(out.shape)} for a batch of {x.shape[0]} images; "
                f"expected ({x.shape[0]}, num_classes) logits"
            )
        if along is not None:
            self._along_logits = out[pixels.shape[0] :]
            return out[: pixels.shape[0]]
        return out

    def _model_input(self, pixels: torch.Tensor, along: torch.Tensor | None) -> torch.Tensor:
        """What the model sees: ``pixels`` (then ``along``'s rows) normalized, in the model's dtype, written
        into one new tensor where normalization makes one anyway."""
        n = pixels.shape[0]
        if self.mean is not None and self.std is not None:
            mean, std = self._normalization(pixels)
            if along is None:
                x = torch.sub(pixels, mean).div_(std)
            else:
                x = pixels.new_empty((n + along.shape[0], *pixels.shape[1:]))
                torch.sub(pixels, mean, out=x[:n])
                torch.sub(along.to(pixels), mean, out=x[n:])
                x.div_(std)
        else:
            x = pixels if along is None else torch.cat([pixels, along.to(pixels)])
        return x if self.dtype == x.dtype else x.to(self.dtype)

    def _select(self, raw: object) -> torch.Tensor:
        """The logits in the model's output: the output itself, ``output`` (a key or an index), or ``.logits``."""
        out: object = raw
        if self.output is not None:
            try:
                if isinstance(self.output, str) and hasattr(raw, self.output):
                    out = getattr(raw, self.output)
                else:
                    out = raw[self.output]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                raise ModelOutputError(
                    f"output={self.output!r}: the model's output ({type(raw).__name__}) has no such key or index"
                ) from None
        elif not isinstance(raw, torch.Tensor):
            if isinstance(getattr(raw, "logits", None), torch.Tensor):
                out = raw.logits  # type: ignore[attr-defined]
            elif isinstance(raw, dict) and isinstance(raw.get("logits"), torch.Tensor):
                out = raw["logits"]
        if not isinstance(out, torch.Tensor):
            raise ModelOutputError(
                f"the model returned {type(out).__name__}, not a tensor of logits; set output (--adv-output=KEY "
                "or an index) to where the logits are, or wrap the model so that it returns an N×K tensor"
            )
        return out

    def _normalization(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as 1×C×1×1 tensors on the pixels' device and dtype, built once per kind."""
        key = (pixels.device, pixels.dtype, pixels.shape[1])
        if key not in self._normalizers:
            mean = _channel_tensor(self.mean, pixels.shape[1], "mean")
            std = _channel_tensor(self.std, pixels.shape[1], "std")
            assert mean is not None and std is not None
            self._normalizers[key] = (mean.to(pixels), std.to(pixels))
        return self._normalizers[key]

    def check_images(self, images: torch.Tensor) -> None:
        """Raise a clear error if ``images`` is not an N×C×H×W float batch in [0,1] of the right size."""
        if images.dim() != 4:
            raise OptionError(
                f"images must be a batch N×C×H×W, got shape {tuple(images.shape)} "
                "(add a batch dimension with images.unsqueeze(0))"
            )
        if images.shape[1] not in (1, 3, 4) and images.shape[-1] in (1, 3) and images.shape[1] > images.shape[-1]:
            raise OptionError(
                f"images of shape {tuple(images.shape)} look channels-last (N×H×W×C); give N×C×H×W: "
                "images.permute(0, 3, 1, 2)"
            )
        if not images.is_floating_point():
            raise OptionError(f"images must be float pixels in [0,1], got dtype {images.dtype} (divide uint8 by 255)")
        if images.numel():
            low, high = images.aminmax()  # one pass
            if low < 0 or high > 1:
                raise OptionError(
                    f"images must be in [0,1] pixel units, got values in [{low:.3g}, {high:.3g}]; pass "
                    "unnormalized pixels and set mean/std instead"
                )
        if self.input_size is not None and tuple(images.shape[-2:]) != tuple(self.input_size):
            raise OptionError(
                f"images are {images.shape[-2]}x{images.shape[-1]} but input_size is "
                f"{self.input_size[0]}x{self.input_size[1]}; load them with input_size set to resize"
            )
