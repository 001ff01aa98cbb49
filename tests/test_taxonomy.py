from pathlib import Path

import pytest
import yaml

from provenance_lib import taxonomy
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


def test_packaged_copy_matches_shared_reference():
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference"
    if not shared.is_dir():
        pytest.skip("../shared is not beside this checkout")
    for name in ("weborganizer_taxonomy.yaml", "paper_reported.yaml"):
        packaged = Path(taxonomy.__file__).parent / "reference" / name
        assert yaml.safe_load(packaged.read_text()) == yaml.safe_load((shared / name).read_text())
