"""One model per format, loaded from the files its library saved (run `python make_models.py` first).

No conftest.py and no mean, std, input size or class names for the timm and Hugging Face models: each
brings its own (marker > CLI > ini > model > default), and the JSON report's ``from_model`` says where
each value came from. Vivid colours (channel gaps of 100+ levels) hold at ε = 0.007; muted ones, whose
channels differ by one 8-bit level, flip: that test is red on purpose.
"""

from pytest_advrobust import adv_robust


@adv_robust(model="timm:models/timm_colors")
def test_timm_model_holds_on_vivid_colors():
    """config.json's pretrained_cfg supplies mean/std, the 32×32 input and the eval resize (shorter side
    to int(32 / 0.875) = 36, bicubic, centre crop to 32×32); label_names the class names. ε = 0.007
    (1.8 levels) cannot close a gap of 100+ levels: all 9 hold."""


@adv_robust(model="timm:models/timm_colors", images="photos/muted")
def test_timm_model_flips_on_muted_colors():
    """The same model classifies the muted photos right, but their channels differ by one 8-bit level
    (0.0039) < 2ε: the attack turns each into another muted colour, and all 9 flip, even after rounding
    the adversarial image to 8 bits. Red on purpose: it shows what a failure looks like."""


@adv_robust(model="hf:models/hf_colors")
def test_hugging_face_model_holds_on_vivid_colors():
    """preprocessor_config.json (a ViTImageProcessor) supplies mean/std and the exact 32×32 resize
    (bilinear); config.json's id2label the class names. All 9 vivid photos hold. (This tiny ViT never
    learned the muted colours: it gets most of them wrong before any attack.)"""


# ONNX files carry no preprocessing: only the graph's input shape (1×3×32×32 with a dynamic batch) is read,
# which gives the input size and the channels. Mean, std and class names are set here; image files get
# the shorter side resized to 32 (bilinear) and a centre crop, not timm's bicubic resize to 36 and crop.
@adv_robust(
    model="models/timm_colors.onnx",
    mean=(0.45, 0.5, 0.55),
    std=(0.2, 0.25, 0.3),
    class_names="red,green,blue",
)
def test_onnx_export_holds_on_vivid_colors():
    """The timm model exported to ONNX, converted with onnx2torch so that the attack has gradients; its
    logits are checked against onnxruntime's on the first batch before any attack. All 9 hold."""


# A torch.export program carries no preprocessing either: its input shape gives the input size and channels.
@adv_robust(
    model="models/timm_colors.pt2",
    mean=(0.45, 0.5, 0.55),
    std=(0.2, 0.25, 0.3),
    class_names="red,green,blue",
)
def test_exported_program_holds_on_vivid_colors():
    """The timm model saved with torch.export.save, loaded with torch.export.load (no pickle: its weights
    are plain tensors), checked to give an input gradient. All 9 hold."""
