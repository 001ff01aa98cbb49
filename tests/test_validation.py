"""Known answers (issue 11): the validation's world plan, its tables on runs whose stage 02 scores are known (a lift
on each benchmark's planted bin, tests/synthetic.py's definitions), and a real 1-seed miniature of ``validate``
(slow)."""

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from provenance_lib import params, validation_tables
from provenance_lib.__main__ import main
from provenance_lib.artifacts import write_json
from provenance_lib.context import open_stage
from provenance_lib.params import Validation
from provenance_lib.stages import binning
from provenance_lib.stages.sampling import MANIFEST
from provenance_lib.taxonomy import load as load_taxonomy
from provenance_lib.validate import WorldPlan, plan, twin_checkpoint
from provenance_lib.stats import separation
from provenance_lib.validation_tables import null_p
from provenance_lib.worlds import WorldInfo
from planted_runs import PLANTED, plant_run

PARAMS = Path(__file__).resolve().parents[1] / "params"


def load_validation(*overrides):
    return params.load(PARAMS / "validation.yaml", list(overrides), model=Validation)


# ----------------------------------------------------------------------------------------------- the plan
def test_plan_has_planted_seeds_doses_and_null_twins():
    validation = load_validation("seeds=[0, 1]", "null_seeds=[1, 5]", "doses=[0.005, 0.01]", "dose_seeds=[0]")
    study = params.load(PARAMS / validation.study)
    worlds = {w.name: w for w in plan(validation, study)}
    assert list(worlds) == ["seed-0", "seed-1", "dose-0.005-seed-0", "null-seed-1", "null-seed-5"]
    assert worlds["seed-1"] == WorldPlan("seed-1", "planted", 1, study.world.planted_token_share)
    assert worlds["null-seed-1"].overrides() == ["seed=1", "world.planted_token_share=0.0"]
    assert worlds["null-seed-1"].twin == "seed-1" and worlds["null-seed-5"].twin is None


def test_validation_params_put_paper_first_and_refuse_a_null_dose():
    assert load_validation("variants=[topk, paper, topk]").variants == ["paper", "topk"]
    assert main(["validate", str(PARAMS / "validation.yaml"), "-p", "doses=[0]"]) == 2


def test_null_world_takes_its_twins_checkpoint_number(tmp_path):
    info = WorldInfo(kind="testbed", fingerprint="", corpus=[], queries="", tasks={}, task_dir="", base_model="b",
                     query_model="q", checkpoints={"step-1": "a", "step-2": "b", "step-3": "c"})
    write_json(tmp_path / "seed-0" / "world" / "world.json", asdict(info))
    assert twin_checkpoint(tmp_path / "seed-0") == 3


# ----------------------------------------------------------------------------------------------- definitions
def test_separation_is_the_auc_and_the_carriers_among_the_top_k():
    values = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    carriers = np.array([True, False, True, False, False, False])
    got = separation(values, carriers, None)           # k = 2 carriers: the top 2 hold one
    assert got == dict(carriers=2, auc=pytest.approx(7 / 8), recall_at_k=0.5, k=2)
    assert separation(values, carriers, 3)["recall_at_k"] == 1.0
    assert np.isnan(separation(values, np.zeros(6, bool), None)["auc"])   # a null world has no carriers


def test_null_p_counts_null_z_at_least_as_high_and_adjusts_for_the_best_of_several():
    pool = np.arange(99, dtype=float)                  # 99 null z: 0..98
    assert null_p(98.0, pool, 1) == pytest.approx(2 / 100)
    assert null_p(1000.0, pool, 1) == pytest.approx(1 / 100)
    assert null_p(1000.0, pool, 4) == pytest.approx(1 - 0.99 ** 4)
    assert np.isnan(null_p(1.0, np.empty(0), 1))


# ----------------------------------------------------------------------------------------------- the tables
def planted_world(project: Path, name: str, lift: float, dose: float) -> Path:
    """A run with synthetic stage 02 scores (``lift`` on each benchmark's planted bin), stage 03 run in process,
    and a ground truth naming those bins and, when ``lift``, their documents as carriers."""
    run_dir = plant_run(project, f"val/{name}", overrides=("binning.bootstrap=20", "binning.min_docs=2"),
                        bins=range(0, 576, 6), docs_per_bin=6, lift=lift, seed=len(name))
    manifest = pd.read_parquet(run_dir / "01_sampling" / MANIFEST)
    tax = load_taxonomy()
    truth = {}
    for benchmark, bin_name in PLANTED.items():
        bin_id = tax.parse_bin(bin_name)
        carriers = manifest.loc[manifest["bin"] == bin_id, "id"].tolist() if lift else []
        truth[benchmark] = dict(bins=[bin_id], documents=carriers, planted_token_share=dose)
    write_json(run_dir / "world" / "ground_truth.json", dict(benchmarks=truth))
    stage = open_stage("03_binning", run_dir=run_dir, out_dir=run_dir / "03_binning")
    inputs, _ = binning.load_inputs(stage)             # stage 03 as binning.run computes it, without its heatmaps
    table, replicates, _ = binning.compute(inputs, stage.params.binning, stage.params.seed)
    binning.write_outputs(stage.out_dir, table, binning.describe(table, stage.params.binning, "testbed"), replicates)
    return run_dir


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    worlds = [dict(name="seed-0", kind="planted", seed=0, dose=0.01), dict(name="null-seed-0", kind="null", seed=0,
                                                                           dose=0.0)]
    for world in worlds:
        planted_world(project, world["name"], lift=2.0 if world["dose"] else 0.0, dose=world["dose"])
    folder = project / "runs" / "val"
    write_json(folder / validation_tables.PLAN, dict(params=dict(recall_k=None), worlds=worlds))
    return validation_tables.compute(folder, folder / "tables")


def test_a_planted_bin_ranks_first_and_its_documents_separate(tables):
    planted = tables.rows[(tables.rows["kind"] == "planted") & (tables.rows["variant"] == "paper")]
    assert len(planted) == 4
    assert (planted["best_rank"] == 1).all()
    assert (planted["auc"] > 0.99).all() and (planted["recall_at_k"] == 1.0).all()
    assert (planted["p_null"] < 0.05).all()            # beyond every null-world bin of the same benchmark
    summary = tables.summary.set_index("variant")
    assert summary.loc["paper", "rank1"] == 4 and summary.loc["paper", "planted_cells"] == 4


def test_a_null_world_has_no_carriers_and_chance_ranks(tables):
    null = tables.rows[(tables.rows["kind"] == "null") & (tables.rows["variant"] == "paper")]
    assert null["auc"].isna().all() and np.isnan(null["p_null"]).all()   # no other null world to compare with
    assert null["best_rank"].median() > 3             # would-be planted bins are ordinary ones here
    assert tables.null_flags().notna().all().all()


def test_dose_response_and_tables_round_trip(tables):
    assert sorted(tables.dose["dose"].unique()) == [0.0, 0.01]
    assert (tables.out_dir / validation_tables.FIGURE).is_file()
    again = validation_tables.load_result(tables.out_dir)
    pd.testing.assert_frame_equal(again.rows, tables.rows)
    assert "paper" in tables.verdict()


def test_validation_notebook_executes_and_writes_the_tables(tables, tmp_path):
    from provenance_lib.execute import run_notebook

    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "validation.ipynb"
    ending = run_notebook(notebook, tmp_path / "executed.ipynb",
                          parameters={"run_dir": str(tables.out_dir.parent), "out_dir": str(tmp_path / "tables")})
    assert ending is None, ending
    again = validation_tables.load_result(tmp_path / "tables")
    pd.testing.assert_frame_equal(again.summary, tables.summary)


# ----------------------------------------------------------------------------------------------- the real thing
@pytest.mark.slow
def test_validate_miniature_runs_stages_01_to_03_and_the_notebook(tmp_path):
    """One planted seed and its null twin on a smaller testbed, through the package's own runner."""
    from provenance_lib.validate import validate

    small = ["world.corpus.documents=2500", "binning.bootstrap=50"]
    folder = validate(PARAMS / "validation.yaml", ["seeds=[0]", "null_seeds=[0]", "doses=[]",
                                                   f"overrides={small}"], runs_dir=tmp_path)
    result = validation_tables.load_result(folder / "tables")
    assert set(result.rows["world"]) == {"seed-0", "null-seed-0"}
    assert (folder / "seed-0" / "run.json").is_file() and (folder / "notebooks" / "validation.ipynb").is_file()
    assert result.rows.loc[result.rows["kind"] == "planted", "auc"].notna().all()
