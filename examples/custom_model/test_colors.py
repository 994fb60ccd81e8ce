"""Vivid colours hold at ε = 0.007; muted ones, whose channels differ by a few 8-bit levels, flip."""

from pytest_advrobust import adv_robust


@adv_robust(images="photos/vivid")
def test_vivid_colors_hold():
    """Channel gaps of 100+ levels: an invisible perturbation cannot close them."""


@adv_robust(images="photos/muted")
def test_muted_colors_flip():
    """A channel gap of one 8-bit level (0.0039) < 2ε: every image flips, even after rounding the
    adversarial image to 8 bits. This test is red on purpose: it shows what a failure looks like."""


def test_your_own_checks_can_use_the_attack_directly(adv_attack):
    # judged on the float image: within ε = 0.001 of an 8-bit picture, its rounded image is the picture
    # itself (the plugin warns that nothing could flip), so the float verdict is what shows the margin
    result = adv_attack(images="photos/muted", epsilon=0.001, verdict="float")
    assert result.flips == []  # 2ε = 0.002 < the one-level gap (0.0039), so nothing flips
