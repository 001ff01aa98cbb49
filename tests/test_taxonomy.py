import tomllib
from pathlib import Path

import pytest
import yaml

from provenance_lib import taxonomy
from provenance_lib.benchmarks import BY_NAME
from provenance_lib.errors import ProvenanceError

TAX = taxonomy.load()


def test_shape():
    assert len(TAX.topics) == 24 and len(TAX.formats) == 24 and TAX.n_bins == 576


def test_all_bins_round_trip_in_every_form():
    seen = set()
    for bin_id in range(TAX.n_bins):
        topic, fmt = TAX.bin_labels(bin_id)
        for t_form in (topic.id, topic.name, topic.short, topic.key, topic.dolma_label):
            for f_form in (fmt.id, fmt.name, fmt.short, fmt.key, fmt.dolma_label):
                assert TAX.bin_id(t_form, f_form) == bin_id
        assert TAX.parse_bin(TAX.bin_name(bin_id)) == bin_id
        assert TAX.parse_bin(TAX.bin_name(bin_id, short=False)) == bin_id
        seen.add(bin_id)
    assert seen == set(range(576))


@pytest.mark.parametrize("axis", ["topics", "formats"])
def test_all_labels_round_trip(axis):
    labels = getattr(TAX, axis)
    for label in labels:
        for form in (label.id, label.name, label.short, label.key, label.dolma_label, label.name.upper()):
            assert labels.get(form) == label


def test_paper_bin_names_parse():
    assert TAX.bin_name(TAX.parse_bin("Literature x Customer Support")) == "Literature x Customer Support"
    assert TAX.bin_labels(TAX.parse_bin("Social Life x Documentation"))[1].key == "documentation"


@pytest.mark.parametrize("bad", ["Astrology", "__label__astrology", 24, -1, True])
def test_unknown_topic_is_a_clear_error(bad):
    with pytest.raises(ProvenanceError, match="unknown WebOrganizer topic"):
        TAX.topics.get(bad)


def test_bad_bin_ids_and_names():
    with pytest.raises(ProvenanceError):
        TAX.bin_labels(576)
    with pytest.raises(ProvenanceError, match="not of the form"):
        TAX.parse_bin("Literature / Customer Support")


def shared_reference() -> Path | None:
    """The project's shared reference folder, wherever the checkout sits below it (a worktree included)."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "shared" / "reference").is_dir():
            return folder / "shared" / "reference"
    return None


def test_packaged_reference_is_what_the_package_reads_ships_and_agrees_with_itself():
    packaged = Path(taxonomy.__file__).parent / "reference"
    tax_yaml = yaml.safe_load((packaged / "weborganizer_taxonomy.yaml").read_text())
    assert [t["name"] for t in tax_yaml["topics"]] == [t.name for t in TAX.topics]
    assert [f["key"] for f in tax_yaml["formats"]] == [f.key for f in TAX.formats]
    shipped = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    globs = shipped["tool"]["setuptools"]["package-data"]["provenance_lib"]
    for path in packaged.rglob("*"):  # an installed (non-editable) package carries every reference file
        if path.is_file():
            assert any(path.relative_to(packaged.parent).match(g) for g in globs), path.name
    # the paper's reported figures name bins, topics, formats and benchmarks this package knows
    paper = yaml.safe_load((packaged / "paper_reported.yaml").read_text())
    assert list(paper["benchmarks"]) == list(BY_NAME)
    assert paper["working_set"]["full_bins"] + paper["working_set"]["underfilled_bins"] == TAX.n_bins
    bins = [
        *paper["bin_z_scores"],
        paper["working_set"]["smallest_bin"]["bin"],
        *(row[key][0] for row in paper["correctness_differential"].values() for key in row),
    ]
    assert all(0 <= TAX.parse_bin(name) < TAX.n_bins for name in bins)
    for signs in paper["top_formats"].values():
        assert all(TAX.formats.get(name) for sign in signs.values() for name in sign)
    for contrast in paper["contrastive_topics"].values():
        assert all(TAX.topics.get(name) for side in ("social_leaning", "stem_leaning") for name in contrast[side])
    r = paper["profile_correlations"]
    assert all(r[i][i] == 1 and r[i][j] == r[j][i] for i in range(4) for j in range(4))
    # and where the project's shared reference is beside the checkout, the copies say the same; the packaged
    # paper_reported.yaml adds only `setting_figures` (its setting's figures as numbers, checked in test_estimate)
    shared = shared_reference()
    for name in ("weborganizer_taxonomy.yaml", "paper_reported.yaml") if shared else ():
        ours = yaml.safe_load((packaged / name).read_text())
        ours.pop("setting_figures", None)
        assert ours == yaml.safe_load((shared / name).read_text()), name
