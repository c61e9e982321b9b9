"""SSInfNet against SInfNet on the phantom, single and multi-class, with the ablations.

The whole SSInfNet pipeline at small size on a CPU, each stage a ``tfcovid`` command run in
``--out`` (so the configs' relative paths resolve there; every stage resumes if run again):

1. ``tfcovid data phantom``: 24 patients of 8 slices at 128 px, 12 of them unlabelled;
2. SInfNet: ``tfcovid train sinfnet_phantom_small`` (labelled training patients only);
3. SSInfNet: ``tfcovid pretrain ssinfnet_phantom_small_pretrain`` (inpainting against the coach
   on every training and unlabelled slice), then ``tfcovid train ssinfnet_phantom_small``;
4. multi SInfNet and multi SSInfNet the same way (prior: SInfNet's map), and the three
   ablations of multi SSInfNet (no focal loss, no Lookahead, neither);
5. ``tfcovid evaluate`` of every network on the same 3 held-out patients.

Prints the pre-training's validation reconstruction loss (L_rec under fixed random masks)
before and after, and the test Dice of every network (mean +- 1.96 SE over slices, as
``tfcovid evaluate``), and writes them to ``OUT/results.json``. Usage::

    python benchmarks/ssinfnet_phantom.py --out ssinfnet_phantom_out
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

STORE = "phantom_ssl.h5"
SINGLE = {"SInfNet": ("sinfnet_phantom_small", "runs/sinfnet_small", []),
          "SSInfNet": ("ssinfnet_phantom_small", "runs/ssinfnet_small", [])}
MULTI = {"multi SInfNet": ("multi_sinfnet_phantom_small", "runs/multi_sinfnet_small", []),
         "multi SSInfNet": ("multi_ssinfnet_phantom_small", "runs/multi_ssinfnet_small", []),
         "multi SSInfNet w/o focal": ("multi_ssinfnet_phantom_small",
                                      "runs/multi_ssinfnet_small_no_focal",
                                      ["loss.terms={bce: 1.0}"]),
         "multi SSInfNet w/o Lookahead": ("multi_ssinfnet_phantom_small",
                                          "runs/multi_ssinfnet_small_no_lookahead",
                                          ["optimizer.lookahead=false"]),
         "multi SSInfNet w/o both": ("multi_ssinfnet_phantom_small",
                                     "runs/multi_ssinfnet_small_plain",
                                     ["loss.terms={bce: 1.0}", "optimizer.lookahead=false"])}
PRETRAIN = {"single": ("ssinfnet_phantom_small_pretrain", "runs/ssinfnet_small_pretrain"),
            "multi": ("multi_ssinfnet_phantom_small_pretrain",
                      "runs/multi_ssinfnet_small_pretrain")}


def tfcovid(out: Path, *arguments: str) -> None:
    """Runs one ``tfcovid`` command in ``out``, stopping the script if it fails."""
    command = [sys.executable, "-m", "tfcovid.cli.main", "--quiet", *arguments]
    print("$ tfcovid " + " ".join(arguments), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=out, check=True)
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def train(out: Path, config: str, workdir: str, overrides: list[str]) -> dict:
    """Trains (or resumes) one network, evaluates it on the test patients, returns the JSON."""
    tfcovid(out, "train", config, "--workdir", workdir,
            *[argument for override in overrides for argument in ("--set", override)])
    tfcovid(out, "evaluate", "--model", workdir, "--out", f"{workdir}/test.json")
    return json.loads((out / workdir / "test.json").read_text())


def dice(metrics: dict) -> dict:
    """Test Dice of a ``tfcovid evaluate`` JSON: infection, or GGO and consolidation."""
    summary = metrics["summary"]
    if "dice" in summary:
        return {"infection": summary["dice"]}
    return {name: values["dice"] for name, values in summary.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("ssinfnet_phantom_out"))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if not (out / STORE).exists():
        tfcovid(out, "data", "phantom", "--out", STORE, "--cases", "24", "--slices", "8",
                "--size", "128", "--unlabelled", "12")
    results = {"pretraining": {}, "test_dice": {}}
    single_sinfnet = SINGLE["SInfNet"]
    results["test_dice"]["SInfNet"] = dice(train(out, *single_sinfnet))
    for kind, (config, workdir) in PRETRAIN.items():
        tfcovid(out, "pretrain", config, "--workdir", workdir)
        summary = json.loads((out / workdir / "pretrain.json").read_text())
        results["pretraining"][kind] = {key: summary[key] for key in (
            "reconstruction_before", "reconstruction_after", "epochs_done", "weights")}
        if kind == "single":
            results["test_dice"]["SSInfNet"] = dice(train(out, *SINGLE["SSInfNet"]))
    for name, stage in MULTI.items():
        results["test_dice"][name] = dice(train(out, *stage))
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for kind, figures in results["pretraining"].items():
        print(f"{kind} pre-training: validation L_rec {figures['reconstruction_before']:.3f} "
              f"before, {figures['reconstruction_after']:.3f} after "
              f"({figures['epochs_done']} epochs)")
    for name, classes in results["test_dice"].items():
        print(f"{name:30s} " + ", ".join(
            f"{label} Dice {value['mean']:.3f} +- {value['error']:.3f}"
            for label, value in classes.items()))


if __name__ == "__main__":
    main()
