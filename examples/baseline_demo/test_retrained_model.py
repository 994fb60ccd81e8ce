"""Is the retrained model less robust than the one we shipped? Compared per image against a baseline.

pytest --demo-model=lite0 --adv-baseline-update   # record the shipped model's baseline
pytest --demo-model=lite1                         # check the retrained model against it
"""

from pytest_advrobust import adv_robust


@adv_robust(minimal_epsilon=True)
def test_not_less_robust_than_shipped():
    """Fails if a photo that held now flips, its minimal ε dropped, or its clean label changed."""
