"""Options in three spellings, one precedence rule, every option end to end, and bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import write_png
from pytest_advrobust.core.settings import OPTIONS

SHOW_CONFIG = """
import json
from pytest_advrobust.core.settings import PER_TEST
def test_show(adv_config, adv_run_config):
    holder = {{n: adv_config if n in PER_TEST else adv_run_config for n in {names!r}}}
    values = {{n: str(getattr(holder[n], n)) for n in {names!r}}}
    sources = {{n: holder[n].sources[n].kind if n in holder[n].sources else "default" for n in {names!r}}}
    print("CONFIG=" + json.dumps([values, sources]))
"""


def _config(result: pytest.RunResult) -> tuple[dict[str, str], dict[str, str]]:
    line = next(line for line in result.outlines if "CONFIG=" in line)
    values, sources = json.loads(line.split("CONFIG=", 1)[1])
    return values, sources


def test_marker_beats_cli_beats_ini_beats_default(project: pytest.Pytester) -> None:
    pytester = project
    pytester.makeini("[pytest]\nadv_epsilon = 0.1\nadv_seed = 3\nadv_steps = 4\n")
    pytester.makepyfile(
        """
        import pytest, json
        @pytest.mark.adv_robust(epsilon=0.3)
        def test_show(adv_config):
            names = ["epsilon", "seed", "steps", "attack"]
            print("CONFIG=" + json.dumps([{n: str(getattr(adv_config, n)) for n in names},
                                          {n: adv_config.source(n).kind for n in names}]))
        """
    )
    result = pytester.runpytest("--adv-epsilon=0.2", "--adv-seed=5", "-s")
    values, sources = _config(result)
    assert values == {"epsilon": "0.3", "seed": "5", "steps": "4", "attack": "apgd"}
    assert sources == {"epsilon": "marker", "seed": "cli", "steps": "ini", "attack": "default"}


EVERY_OPTION = [
    ("epsilon", "0.031", "0.031"),
    ("norm", "L2", "l2"),
    ("attack", "apgd", "apgd"),
    ("profile", "thorough", "thorough"),
    ("eot", "20", "20"),
    ("queries", "5000", "5000"),
    ("loss", "dlr", "dlr"),
    ("steps", "7", "7"),
    ("step-size", "0.002", "0.002"),
    ("targets", "3,paper towel", "3,paper towel"),
    ("seed", "42", "42"),
    ("device", "cpu", "cpu"),
    ("model", "mymodels:make", "mymodels:make"),
    ("images", "imgs", "(PosixPath('{root}/imgs'),)"),
    ("labels", "labels.csv", "{root}/labels.csv"),
    ("class-names", "imagenet", "imagenet"),
    ("mean", "imagenet", "(0.485, 0.456, 0.406)"),
    ("std", "0.5,0.5,0.5", "(0.5, 0.5, 0.5)"),
    ("input-size", "32x24", "(32, 24)"),
    ("image-mode", "l", "L"),
    ("output", "logits", "logits"),
    ("early-stop", "no", "False"),
    ("verdict", "float", "float"),
    ("batch-size", "2", "2"),
    ("workers", "2", "2"),
    ("shards", "3", "3"),
    ("shard", "2/4", "2/4"),
    ("sanity-checks", "off", "False"),
    ("minimal-epsilon", "yes", "True"),
    ("epsilon-max", "0.05", "0.05"),
    ("epsilon-precision", "0.001", "0.001"),
    ("tolerance", "0.001,10%", "(0.001, 0.1)"),
    ("baseline-rule", "statistical", "statistical"),
    ("min-robust-accuracy", "60%", "0.6"),
    ("confidence", "0.99", "0.99"),
    ("baseline-update", "true", "True"),
    ("baseline-dir", "bl", "{root}/bl"),
    ("baseline-strict", "1", "True"),
    ("allow-pickle", "yes", "True"),
    ("artifacts", "art", "{root}/art"),
    ("artifacts-all", "yes", "True"),
    ("artifacts-max", "5", "5"),
    ("amplify", "20", "20.0"),
    ("html", "out/r.html", "{root}/out/r.html"),
    ("report", "out/r.json", "{root}/out/r.json"),
    ("markdown", "out/s.md", "{root}/out/s.md"),
    ("github-summary", "no", "False"),
]


def test_the_table_covers_every_option() -> None:
    assert {option for option, _, _ in EVERY_OPTION} == {o.cli.removeprefix("--adv-") for o in OPTIONS}


@pytest.mark.parametrize(("option", "raw", "shown"), EVERY_OPTION)
@pytest.mark.parametrize("spelling", ["cli", "ini"])
def test_every_option_in_cli_and_ini_spelling(
    pytester: pytest.Pytester, option: str, raw: str, shown: str, spelling: str
) -> None:
    name = option.replace("-", "_")
    pytester.makepyfile(SHOW_CONFIG.format(names=[name]))
    if spelling == "ini":
        pytester.makeini(f"[pytest]\nadv_{name} = {raw}\n")
        args: list[str] = []
    elif shown in ("True", "False"):  # booleans are flags: --adv-x, --adv-no-x
        args = [f"--adv-{option}" if shown == "True" else f"--adv-no-{option}"]
    else:
        args = [f"--adv-{option}={raw}"]
    if name == "step_size":  # apgd, the default attack, sets its own step size
        args.append("--adv-attack=bim")
    if name == "queries":  # the square attack's budget: refused with apgd, the default attack
        args.append("--adv-attack=square")
    if name == "mean":
        args.append("--adv-std=imagenet")
    if name == "std":
        args.append("--adv-mean=0.5")
    if name == "norm":  # linf's default ε is no l2 budget: refused unless set
        args.append("--adv-epsilon=0.5")
    result = pytester.runpytest("-s", *args)
    result.assert_outcomes(passed=1)
    values, sources = _config(result)
    assert values[name] == shown.format(root=pytester.path)
    assert sources[name] == spelling


def test_ini_paths_are_relative_to_the_rootdir(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nadv_images = data/imgs\n")
    write_png(pytester.path / "data" / "imgs" / "a.png", size=(8, 8))
    sub = pytester.mkdir("tests")
    sub.joinpath("test_a.py").write_text("def test_a(adv_images):\n    assert adv_images.names == ['a.png']\n")
    pytester.runpytest("tests").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--adv-epsilon=-1"], "ERROR: --adv-epsilon=-1: must be ≥ 0 (a budget in ?0,1? pixel units)"),
        (["--adv-epsilon=8"], "ERROR: --adv-epsilon=8: must be ≤ 1: ε is in ?0,1? pixel units, not 0–255*"),
        (["--adv-norm=l3"], "ERROR: --adv-norm=l3: must be one of linf, l2, l1 (got 'l3')*"),
        (
            ["--adv-norm=l1", "--adv-attack=square", "--adv-epsilon=12"],
            "ERROR: --adv-attack=square: attack=square has no form under norm=l1*",
        ),
        (["--adv-epsilon=nan"], "ERROR: --adv-epsilon=nan: must be a finite number"),
        (["--adv-steps=0"], "ERROR: --adv-steps=0: must be ≥ 1"),
        (["--adv-attack=deepfool"], "ERROR: --adv-attack=deepfool: must be one of fgsm, bim, pgd*"),
        (["--adv-attack=fgsm", "--adv-steps=3"], "ERROR: --adv-steps=3: fgsm is exactly one step of size ε*"),
        (["--adv-device=gpu0"], "ERROR: --adv-device=gpu0: must be 'model', 'auto', 'cpu'*"),
        (["--adv-mean=imagenet"], "ERROR: --adv-mean=*mean was given without std*"),
    ],
)
def test_bad_cli_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_ini_value_names_the_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nadv_seed = -3\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: adv_seed = -3 in tox.ini: must be ≥ 0"])


def test_help_documents_every_option_with_units_and_default(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())
    for option in OPTIONS:
        assert (f"{option.cli} " if option.metavar == "BOOL" else f"{option.cli}=") in text
    assert "--adv-baseline-update " in text and "--adv-no-baseline-update " in text, "booleans are flags"
    assert "--adv-baseline-update=" not in text
    assert "Perturbation budget in [0,1] pixel units (not 0-255), measured in NORM" in text
    assert "Default: 0.007" in text
    assert "--adv-norm=NORM" in text and "an l2 ε of 0.5 lets one pixel move 0.5" in text
    assert "adv_epsilon (string):" in text


def test_header_prints_attack_epsilon_and_seed(project: pytest.Pytester) -> None:
    project.makepyfile("from pytest_advrobust import adv_robust\n@adv_robust\ndef test_a():\n    pass\n")
    result = project.runpytest("--adv-epsilon=0.01", "--adv-seed=9")
    result.stdout.fnmatch_lines(
        ["advrobust: attack=apgd norm=linf epsilon=0.01 steps=10 step_size=2ε,adaptive loss=dlr targets=top-9 seed=9 *"]
    )
    project.makepyfile(test_plain="def test_b():\n    pass\n")
    plain = project.runpytest("test_plain.py", "--adv-epsilon=0.01")
    plain.assert_outcomes(passed=1)
    plain.stdout.no_fnmatch_line("advrobust:*")  # no robustness test collected: no header


def test_cli_spelling_works_in_a_real_ci_line(project: pytest.Pytester, tmp_path: Path) -> None:
    project.makepyfile("from pytest_advrobust import adv_robust\n@adv_robust\ndef test_a():\n    pass\n")
    result = project.runpytest_subprocess("--adv-epsilon=0.001", "-q")
    result.assert_outcomes(passed=1)


def test_a_budget_written_as_a_fraction_on_the_command_line(project: pytest.Pytester) -> None:
    project.makepyfile("from pytest_advrobust import adv_robust\n@adv_robust(attack='fgsm')\ndef test_a():\n    pass\n")
    result = project.runpytest("--adv-epsilon", "8/255", "-o", "adv_epsilon_max=16/255")
    result.stdout.fnmatch_lines(["advrobust: attack=apgd norm=linf epsilon=0.0313725 *"])
