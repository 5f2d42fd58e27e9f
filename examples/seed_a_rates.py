"""Seed A: the loss of over-parameterized gradient EM decays much faster than O(1/sqrt(t)).

Population gradient EM for n = 2, 3 and 5 components learning N(0, 1), from random starts,
with the fitted tail exponent of the KL loss and the constant of the proven bound
(docs/seed-a.md). Writes seed_a_rates.png/.svg and seed_a_rates.json into --out.

    python examples/seed_a_rates.py [--small] [--out DIR]
"""

import argparse
from pathlib import Path

from gmmscape._files import write_json
from gmmscape.experiments.overparam import overparam_study, plot_study

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--small", action="store_true", help="a few seconds instead of a minute")
parser.add_argument("--out", type=Path, default=Path("example-output"))
args = parser.parse_args()

ns, steps = ((2, 3), 2_000) if args.small else ((2, 3, 5), 100_000)
study = overparam_study(ns=ns, d=1, steps=steps, restarts=2, weight_sets=((0.3, 0.7),))
for row in study.table:
    print(
        f"{row['label']:>10}: alpha = {row['alpha_loss']:.3f} +- {row['alpha_loss_err']:.3f}, "
        f"max_t sqrt(t) L_t = {row['max_sqrt_t_loss']:.3g}"
    )
print(study.table[0]["explanation"])
paths = plot_study(study, args.out, "seed_a_rates")
print("wrote", *paths, write_json(study, args.out / "seed_a_rates.json"))
