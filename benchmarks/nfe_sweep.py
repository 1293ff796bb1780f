"""Quality against network evaluations: evaluate trained stages over samplers x steps; prints JSON lines.

    python benchmarks/nfe_sweep.py --stage1 RUN1 --stage2 RUN2 --data DIR --limit 32 \
        --grid "ddpm:1000/600 ddim:50,20,10,5,2 dpmpp2m:20,10,5,3,2,1"

Each grid entry is SAMPLER:STEPS[,STEPS...]; "1000/600" gives stage 2 and stage 1 their own step counts
(full-chain DDPM is T steps per stage). Every other entry uses the same steps for both stages. One JSON line
per setting with end-to-end and per-stage mae/iou/mae_mm and nfe.
"""

from __future__ import annotations

import argparse
import json


def settings(grid: str):
    for entry in grid.split():
        sampler, steps = entry.split(":")
        for value in steps.split(","):
            if "/" in value:
                s2, s1 = value.split("/")
                yield sampler, int(s1), int(s2)
            else:
                yield sampler, int(value), int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage1", required=True)
    parser.add_argument("--stage2", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--grid", default="ddim:20,10,5,2 dpmpp2m:20,10,5,3,2,1")
    args = parser.parse_args()

    from rgbd_fusion_core.evaluation.evaluate import evaluate

    keys = ("mae", "mse", "iou", "mae_mm", "rmse_mm", "nfe", "ms_per_frame")
    for sampler, steps1, steps2 in settings(args.grid):
        report = evaluate(
            args.stage1,
            args.stage2,
            args.data,
            sampler=sampler,
            steps1=steps1,
            steps2=steps2,
            limit=args.limit,
            batch_size=args.batch_size,
        )
        line = {"sampler": sampler, "steps1": steps1, "steps2": steps2}
        for section in ("stage1", "stage2_gt_low", "end_to_end"):
            line[section] = {k: round(report[section][k], 5) for k in keys}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
