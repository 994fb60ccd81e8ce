"""The experiments of "Explaining and Harnessing Adversarial Examples" as tests, on EfficientNet-Lite0.

Three of them are red on purpose: an undefended ImageNet model *is* fooled by perturbations no one can
see, and a red test that says exactly how is the expected answer. Run with ``--adv-epsilon=0.007``.
"""

from pytest_advrobust import adv_robust


@adv_robust(attack="fgsm", targets="untargeted")
def test_fgsm_flips_real_photos():
    """Panda → gibbon: one step of ε·sign(∇ loss) flips most photos (ε from --adv-epsilon, 0.007)."""


@adv_robust(
    attack="bim",  # the article's iterative sign steps
    images="black.png",
    labels="prediction",
    targets="paper towel",
    epsilon=16 / 255,
    steps=20,
    early_stop=False,
)
def test_black_image_becomes_paper_towel():
    """Targeted, iterative: an all-black image (which can only get brighter) drifts to "paper towel".

    The failure shows P('paper towel') per step. Black needs a larger budget than a photo: half of each
    pixel's ε-ball lies below 0 and is clipped away.
    """


@adv_robust(attack="bim", images="photos/coffee.png", targets="vulture", steps=20, early_stop=False)
def test_photo_becomes_vulture():
    """Panda → vulture: 20 small targeted steps within ε turn an espresso into a "vulture"; the report
    lists the classes it passes through and the target's probability per step."""


@adv_robust(attack="fgsm", targets="untargeted", images="photos/camera.png")
def test_strong_class_holds_against_one_step():
    """Green: at 95% "tripod", one FGSM step within ε = 0.007 does not flip the cameraman photo.

    (The default attack, APGD toward the runner-up classes, does: remove ``attack="fgsm"`` to see it.)
    """
