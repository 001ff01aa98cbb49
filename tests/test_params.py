import re
from pathlib import Path

import pytest

from provenance_lib import params
from provenance_lib.errors import ProvenanceError

PARAMS_DIR = Path(__file__).resolve().parents[1] / "params"


VALIDATION = PARAMS_DIR / "validation.yaml"  # not a study: the known-answers validation's worlds (validate)


@pytest.mark.parametrize("path", sorted(set(PARAMS_DIR.glob("*.yaml")) - {VALIDATION}), ids=lambda p: p.name)
def test_every_shipped_params_file_validates(path):
    study = params.load(path)
    runs_sampling = study.stages is None or "01_sampling" in study.stages
    assert (study.sampling is not None) == runs_sampling


def test_the_validation_params_validate_and_name_a_testbed_study():
    from provenance_lib.validate import load

    validation, _, study = load(VALIDATION)
    assert study.world.kind == "testbed" and len(validation.seeds) >= 3 and validation.null_seeds


def _write(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text((PARAMS_DIR / "testbed.yaml").read_text() + text)
    return path


def _error(path, overrides=()):
    with pytest.raises(ProvenanceError) as info:
        params.load(path, overrides)
    return str(info.value)


def test_unknown_key_is_named_with_file(tmp_path):
    path = tmp_path / "study.yaml"
    misspelt = (PARAMS_DIR / "testbed.yaml").read_text().replace("sampling:\n", "sampling:\n  target_per_bim: 3\n")
    path.write_text(misspelt)
    message = _error(path)
    assert f"{path}: sampling.target_per_bim: unknown key" in message


def test_unknown_top_level_section(tmp_path):
    message = _error(_write(tmp_path, "gradiends: {}\n"))
    assert "gradiends: unknown key" in message


def test_bad_type_names_the_key_and_the_override_that_set_it(tmp_path):
    message = _error(PARAMS_DIR / "testbed.yaml", ["sampling.target_per_bin=many"])
    assert "testbed.yaml with -p sampling.target_per_bin=many: sampling.target_per_bin:" in message
    assert "integer" in message


def test_impossible_value_names_the_key(tmp_path):
    message = _error(PARAMS_DIR / "testbed.yaml", ["sampling.target_per_bin=-5"])
    assert "sampling.target_per_bin: Input should be greater than 0" in message


def test_union_member_errors_read_like_the_yaml(tmp_path):
    message = _error(PARAMS_DIR / "testbed.yaml", ["world.no_such_knob=1"])
    assert "world.no_such_knob: unknown key" in message


def test_override_applies_and_is_typed():
    study = params.load(PARAMS_DIR / "testbed.yaml", ["sampling.target_per_bin=7", "seed=3"])
    assert study.sampling.target_per_bin == 7 and study.seed == 3


def test_malformed_override_is_explained():
    assert "key.path=value" in _error(PARAMS_DIR / "testbed.yaml", ["sampling.target_per_bin"])


def test_missing_file_is_explained(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope.yaml")


def test_dump_round_trips(tmp_path):
    study = params.load(PARAMS_DIR / "testbed.yaml", ["seed=11"])
    path = tmp_path / "resolved.yaml"
    path.write_text(params.dump(study))
    assert params.load(path) == study


def test_cross_field_error_blames_the_override_and_does_not_print_the_section():
    message = _error(PARAMS_DIR / "testbed.yaml", ["world.corpus.words_min=500"])
    assert message.startswith(
        f"{PARAMS_DIR / 'testbed.yaml'} with -p world.corpus.words_min=500: world.corpus: "
        "Value error, need words_min <= words_median <= words_max"
    )
    assert "empty_bin_share" not in message and len(message.splitlines()) == 1


def test_cross_field_error_in_the_file_blames_the_file(tmp_path):
    path = _write(tmp_path, "")
    path.write_text(re.sub(r"words_min: \d+", "words_min: 500", path.read_text()))
    message = _error(path, ["seed=4"])
    assert message.startswith(f"{path}: world.corpus: Value error") and "-p" not in message


def test_override_fills_a_null_section():
    study = params.load(
        PARAMS_DIR / "real-mini.yaml", ["labels.topic.kind=centroid", "labels.topic.path=classifiers/topic.npz"]
    )
    assert study.labels.topic.kind == "centroid" and study.labels.format is None
    message = _error(PARAMS_DIR / "real-mini.yaml", ["labels.topic.kind=centroid"])
    assert "with -p labels.topic.kind=centroid: labels.topic.path: Field required" in message


def test_override_into_a_value_is_explained():
    assert "seed is a value, not a section" in _error(PARAMS_DIR / "testbed.yaml", ["seed.x=1"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("sampling.target_per_bin=true", "sampling.target_per_bin"),
        ("gradients.curvature.damping=true", "gradients.curvature.damping"),
        ("seed=false", "seed"),
    ],
)
def test_a_boolean_is_not_a_number(override, key):
    assert _error(PARAMS_DIR / "testbed.yaml", [override]) == (
        f"params/testbed.yaml with -p {override}: {key}: a boolean (true/false) is not a number (got "
        f"{override.endswith('true')}) (fix: write the number)"
    ).replace("params/", f"{PARAMS_DIR}/")
    assert params.load(PARAMS_DIR / "testbed.yaml", ["gradients.keep_document_gradients=false"])  # a real boolean


def test_an_override_that_is_not_yaml_is_one_line_naming_it():
    assert _error(PARAMS_DIR / "testbed.yaml", ["x=[1"]) == (
        "override 'x=[1': the value is not valid YAML (expected ',' or ']', but got '<stream end>') (fix: quote it "
        "for the shell and close every bracket and quote, e.g. -p 'x=[1, 2]')"
    )


def test_a_mistyped_params_path_gets_the_close_match(tmp_path):
    assert _error(PARAMS_DIR / "testbd.yaml").endswith(f"(fix: did you mean {PARAMS_DIR / 'testbed.yaml'}?)")
    assert _error(PARAMS_DIR / "real_mini.yaml").endswith(f"(fix: did you mean {PARAMS_DIR / 'real-mini.yaml'}?)")
    assert "pass one of" in _error(PARAMS_DIR / "zzz.yaml")
