"""A suite without robustness tests must not pay for importing torch."""

from __future__ import annotations

import pytest


def test_plain_suite_does_not_import_torch(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys
        def pytest_unconfigure(config):
            with open("modules.txt", "w") as f:
                f.write("torch" if "torch" in sys.modules else "no torch")
        """
    )
    pytester.makepyfile("def test_a():\n    import sys\n    assert 'torch' not in sys.modules\n")
    result = pytester.runpytest_subprocess("--adv-epsilon=0.007", "--adv-report=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*advrobust:*")  # a suite without robustness tests shows nothing of ours
    assert (pytester.path / "modules.txt").read_text() == "no torch"
