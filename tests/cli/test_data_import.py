"""``tfcovid data import``: exit codes, atomic output, --overwrite, per-kind options."""

import re

import numpy as np
import pytest

from tests.data.ct_files import hu_volume, write_nifti
from tfcovid.cli.main import build_parser, main
from tfcovid.data.importers import IMPORTERS
from tfcovid.data.store import CLASS_NAMES, CaseStore


def write_scan(folder, mask_values=(0, 1, 2), seed=0):
    image = hu_volume((7, 6, 3), seed=seed)
    mask = np.random.default_rng(seed).choice(mask_values, size=image.shape).astype(np.uint8)
    write_nifti(folder / "scan.nii.gz", image)
    write_nifti(folder / "mask.nii.gz", mask)
    return image, mask


def import_nifti(folder, *extra):
    return main(["--quiet", "data", "import", "nifti", str(folder / "scan.nii.gz"),
                 "--mask", str(folder / "mask.nii.gz"), "--out", str(folder / "out.h5"), *extra])


def test_import_prints_the_summary(tmp_path, capsys):
    _, mask = write_scan(tmp_path)
    assert import_nifti(tmp_path) == 0
    output = capsys.readouterr().out
    assert "cases       1 (1 labelled, 0 unlabelled)" in output
    for index, count in enumerate(np.bincount(mask.ravel(), minlength=3)):
        assert re.search(rf"^  {index} {CLASS_NAMES[index]} +{count:,} ", output, re.MULTILINE)
    with CaseStore(tmp_path / "out.h5") as store:
        assert store.case_ids == ["scan"]


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    write_scan(tmp_path, mask_values=(0, 1, 5))
    assert import_nifti(tmp_path) == 2
    error = capsys.readouterr().err
    assert error.startswith("tfcovid: error: ") and "mask.nii.gz: unknown label values [5]" in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mask.nii.gz", "scan.nii.gz"]


def test_existing_output_needs_overwrite(tmp_path, capsys):
    write_scan(tmp_path, seed=0)
    assert import_nifti(tmp_path) == 0
    before = (tmp_path / "out.h5").read_bytes()
    image, _ = write_scan(tmp_path, seed=1)
    assert import_nifti(tmp_path) == 2
    assert "out.h5: already exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "out.h5").read_bytes() == before
    assert import_nifti(tmp_path, "--overwrite") == 0
    with CaseStore(tmp_path / "out.h5") as store:
        np.testing.assert_array_equal(store.read("scan").image, image[::-1, ::-1].T)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "mask.nii.gz", "out.h5", "scan.nii.gz"]


def test_missing_source_exits_2(tmp_path, capsys):
    assert main(["data", "import", "dicom", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "out.h5")]) == 2
    assert "nowhere: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("kind", sorted(IMPORTERS))
def test_every_importer_option_is_on_the_command_line(kind):
    args = build_parser().parse_args(["data", "import", kind, "src", "--out", "out.h5"])
    assert set(IMPORTERS[kind].options()) <= set(vars(args))


def test_option_values_reach_the_importer():
    parse = build_parser().parse_args
    assert parse(["data", "import", "nifti", "s", "--out", "o", "--label-map", "3=0",
                  "--label-map", "4=2"]).label_map == {3: 0, 4: 2}
    assert parse(["data", "import", "semiseg", "s", "--out", "o",
                  "--no-unlabelled"]).include_unlabelled is False
    assert parse(["data", "import", "medseg", "s", "--out", "o",
                  "--effusion-label", "1"]).effusion_label == 1
    with pytest.raises(SystemExit):
        parse(["data", "import", "nifti", "s", "--out", "o", "--label-map", "3:0"])


@pytest.mark.slow
def test_real_semiseg_full_import(real_data_dir, tmp_path, capsys):
    assert main(["--quiet", "data", "import", "semiseg", str(real_data_dir / "COVID-SemiSeg"),
                 "--out", str(tmp_path / "semiseg.h5")]) == 0
    output = capsys.readouterr().out
    assert "cases       1698 (98 labelled, 1600 unlabelled)" in output
    # README: GGO 560,121 + 636,258 and consolidation 326,093 + 262,742 pixels (train + test)
    assert "1,196,379" in output and "588,835" in output
